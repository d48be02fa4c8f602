"""xpnn.interop.binding: checks of explicit parameters."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn.interop.binding import check_params


def test_check_params_names_what_is_missing_and_unexpected() -> None:
    names = ("0.weight", "0.bias")
    check_params({"0.bias": np.zeros(2), "0.weight": np.zeros((2, 2))}, names, made_by="x")
    with pytest.raises(TypeError, match=r"as init\(\) returns, got list"):
        check_params([], names, made_by="init() returns")
    with pytest.raises(ValueError, match="missing: 0.bias; unexpected: 1.bias"):
        check_params({"0.weight": 0, "1.bias": 0}, names, made_by="x")
    # A mapping that is not a dict passes only where any mapping may.
    from types import MappingProxyType

    proxy = MappingProxyType({"0.weight": 0, "0.bias": 0})
    check_params(proxy, names, made_by="x")
    with pytest.raises(TypeError, match="got mappingproxy"):
        check_params(proxy, names, made_by="x", container=dict)
