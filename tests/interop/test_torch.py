"""xpnn.interop.torch: from_torch, to_torch, and training through TorchModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xpnn.interop.torch.convert as convert
from xpnn import (
    GELU,
    Dropout,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from xpnn.interop.torch import TorchModule, XpnnFunction, from_torch, to_torch
from xpnn.testing import assert_close, random_array, to_numpy

F64 = torch.float64

# (torch activation, the xpnn class it becomes, its settings there)
ACTIVATIONS = [
    (lambda: nn.ReLU(), ReLU, {}),
    (lambda: nn.LeakyReLU(0.2), LeakyReLU, {"negative_slope": 0.2}),
    (lambda: nn.Tanh(), Tanh, {}),
    (lambda: nn.Sigmoid(), Sigmoid, {}),
    (lambda: nn.GELU(), GELU, {"approximate": "none"}),
    (lambda: nn.GELU(approximate="tanh"), GELU, {"approximate": "tanh"}),
    (lambda: nn.Softmax(dim=-1), Softmax, {"axis": -1}),
    (lambda: nn.Softmax(dim=0), Softmax, {"axis": 0}),
    (lambda: nn.LogSoftmax(dim=1), LogSoftmax, {"axis": 1}),
    (lambda: nn.Dropout(0.3), Dropout, {"p": 0.3}),
]
ACTIVATION_IDS = [
    "relu",
    "leaky_relu",
    "tanh",
    "sigmoid",
    "gelu",
    "gelu_tanh",
    "softmax",
    "softmax0",
    "log_softmax",
    "dropout",
]


def torch_mlp(activation: nn.Module, *, dtype: torch.dtype = F64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 6, dtype=dtype), activation, nn.Linear(6, 3, dtype=dtype)
    ).eval()


def host(x: object) -> torch.Tensor:
    return torch.from_numpy(to_numpy(x))


# -- from_torch ----------------------------------------------------------------


def test_linear_defaults_to_torch_on_the_module_device_and_dtype():
    torch.manual_seed(0)
    for dtype in (torch.float32, F64):
        module = nn.Linear(5, 3, dtype=dtype)
        layer = from_torch(module)
        assert isinstance(layer, Linear)
        assert (layer.in_features, layer.out_features) == (5, 3)
        for value in layer.parameters():
            assert type(value) is torch.Tensor
            assert value.dtype == dtype
            assert value.device == module.weight.device
            assert not value.requires_grad
        # xpnn's layout is the transpose of torch's, bit for bit.
        assert torch.equal(layer.weight, module.weight.detach().T)
        assert torch.equal(layer.bias, module.bias.detach())
        assert layer.weight.is_contiguous()
        x = torch.randn(7, 5, dtype=dtype)
        assert_close(layer(x), module(x).detach())


def test_linear_without_bias():
    module = nn.Linear(3, 2, bias=False, dtype=F64)
    layer = from_torch(module)
    assert layer.bias is None
    assert list(layer.params) == ["weight"]
    x = torch.randn(4, 3, dtype=F64)
    assert_close(layer(x), module(x).detach())
    assert to_torch(layer).bias is None


@pytest.mark.parametrize(("make", "cls", "settings"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_sequential_with_each_activation_matches_torch(make, cls, settings):
    module = torch_mlp(make())
    model = from_torch(module)
    assert isinstance(model, Sequential)
    assert [type(layer) for layer in model.layers] == [Linear, cls, Linear]
    for key, value in settings.items():
        assert getattr(model[1], key) == value
    assert [name for name, _ in model.named_parameters()] == [
        name for name, _ in module.named_parameters()
    ]
    x = torch.randn(5, 4, dtype=F64)
    assert_close(model(x), module(x).detach())


def test_every_activation_in_one_float32_model():
    """float32 end to end, every activation at once, to float32 tolerance."""
    torch.manual_seed(1)
    layers: list[nn.Module] = []
    for make, _, _ in ACTIVATIONS:
        layers += [nn.Linear(6, 6), make()]
    module = nn.Sequential(*layers).eval()
    model = from_torch(module)
    assert model[0].weight.dtype == torch.float32
    x = torch.randn(6, 6)
    assert_close(model(x), module(x).detach())


def test_nested_sequential_keeps_names_and_structure():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(3, 4, dtype=F64), nn.Tanh())
    module = nn.Sequential(inner, nn.Linear(4, 2, dtype=F64))
    model = from_torch(module)
    assert isinstance(model[0], Sequential)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert names == list(module.state_dict())
    x = torch.randn(3, 3, dtype=F64)
    assert_close(model(x), module(x).detach())


def test_copies_share_no_memory_either_way():
    module = nn.Linear(3, 2, dtype=F64)
    before = module.weight.detach().clone()
    layer = from_torch(module)
    with torch.no_grad():
        module.weight.add_(1.0)
        module.bias.add_(1.0)
    assert torch.equal(layer.weight, before.T)
    layer.weight += 5.0
    assert torch.equal(module.weight.detach(), before + 1.0)

    back = to_torch(layer)
    with torch.no_grad():
        back.weight.mul_(0.0)
    assert torch.equal(layer.weight, before.T + 5.0)


def test_degenerate_shapes_are_copied_too():
    """A (1, n) weight's transpose is already contiguous: still a copy."""
    for shape in ((1, 1), (1, 4), (4, 1)):
        module = nn.Linear(shape[1], shape[0], dtype=F64)
        layer = from_torch(module)
        assert layer.weight.untyped_storage().data_ptr() != (
            module.weight.untyped_storage().data_ptr()
        )
        assert layer.bias.untyped_storage().data_ptr() != module.bias.untyped_storage().data_ptr()


def test_training_mode_is_kept_per_module():
    module = torch_mlp(nn.Dropout(0.5))
    module.train()
    module[1].eval()
    model = from_torch(module)
    assert [model.training, model[0].training, model[1].training] == [True, True, False]
    back = to_torch(model)
    assert [back.training, back[0].training, back[1].training] == [True, True, False]


def test_dtype_alone_keeps_torch_and_the_device():
    module = torch_mlp(nn.ReLU(), dtype=torch.float32)
    model = from_torch(module, dtype="float64")
    assert model[0].weight.dtype == F64
    assert model[0].weight.device == module[0].weight.device
    model = from_torch(module, dtype=torch.float64)
    assert model[2].bias.dtype == F64


def test_half_precision_needs_a_dtype():
    module = nn.Linear(3, 2, dtype=torch.float16)
    with pytest.raises(TypeError, match=r"'weight' is torch.float16.*pass dtype="):
        from_torch(module)
    layer = from_torch(module, dtype="float32")
    assert layer.weight.dtype == torch.float32
    # float16 values are exact in float32.
    assert torch.equal(layer.weight, module.weight.detach().T.float())
    layer = from_torch(nn.Sequential(nn.Linear(3, 2, dtype=torch.bfloat16)), xp=np, dtype="float64")
    assert layer[0].weight.dtype == np.float64


def test_onto_the_session_backend(xp, device, real_dtype):
    module = torch_mlp(nn.Tanh())
    model = from_torch(module, xp=xp, device=device, dtype=real_dtype)
    for name, value in model.named_parameters():
        # Exactly the torch values, rounded once to the session's dtype.
        assert_close(
            value,
            torch_value(module, name).astype(to_numpy(value).dtype),
            xp=xp,
            device=device,
            dtype=real_dtype,
            rtol=0,
            atol=0,
            err_msg=name,
        )
    x = random_array(xp, (5, 4), dtype=real_dtype, device=device, seed=3)
    expected = module(host(x).to(F64)).detach().numpy()
    assert_close(model(x), expected, xp=xp, device=device, dtype=real_dtype)

    # Back to torch: the weights it came from, cast to the session's dtype.
    back = to_torch(model)
    assert [type(m) for m in back] == [nn.Linear, nn.Tanh, nn.Linear]
    for name, value in back.state_dict().items():
        assert value.device == torch.device("cpu") or xp.__name__.endswith("torch")
        np.testing.assert_array_equal(
            value.cpu().numpy(), module.state_dict()[name].numpy().astype(to_numpy(x).dtype)
        )


@pytest.mark.parametrize("name", ["complex64", "complex128"])
def test_complex_linear_onto_the_session_backend(xp, device, name):
    """Complex weights are transposed, never conjugated."""
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name} (inspection API)")
    dtype = available[name]
    module = nn.Linear(4, 3, dtype=getattr(torch, name))
    model = from_torch(module, xp=xp, device=device)
    assert model.weight.dtype == dtype
    x = random_array(xp, (5, 4), dtype=dtype, device=device, seed=4)
    wide = torch.complex128
    expected = nn.functional.linear(
        host(x).to(wide), module.weight.detach().to(wide), module.bias.detach().to(wide)
    )
    assert_close(model(x), expected.numpy(), xp=xp, device=device, dtype=dtype)
    back = to_torch(model)
    assert torch.equal(back.weight.cpu(), module.weight.detach())


def torch_value(module: nn.Module, name: str) -> np.ndarray:
    """Parameter ``name`` of a torch module, in xpnn's layout."""
    value = module.get_parameter(name).detach()
    return (value.T if name.endswith("weight") else value).numpy().copy()


# -- to_torch --------------------------------------------------------------------


@pytest.mark.parametrize(("make", "cls", "settings"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_round_trip_gives_an_identical_module(make, cls, settings):
    module = torch_mlp(make(), dtype=torch.float32)
    back = to_torch(from_torch(module))
    assert repr(back) == repr(module)
    theirs, ours = module.state_dict(), back.state_dict()
    assert list(ours) == list(theirs)
    for name, value in theirs.items():
        assert ours[name].dtype == value.dtype
        assert ours[name].device == value.device
        assert torch.equal(ours[name], value), name
    x = torch.randn(5, 4)
    assert torch.equal(back(x), module(x))


def test_round_trip_through_other_libraries_is_exact():
    import array_api_strict

    module = torch_mlp(nn.GELU(approximate="tanh"))
    for xp in (np, array_api_strict):
        back = to_torch(from_torch(module, xp=xp))
        for name, value in module.state_dict().items():
            assert torch.equal(back.state_dict()[name], value), (xp.__name__, name)


def test_to_torch_from_numpy_defaults_and_overrides():
    model = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
    net = to_torch(model)
    assert isinstance(net, nn.Sequential)
    assert net[0].weight.dtype == F64
    assert net[0].weight.device == torch.device("cpu")
    assert tuple(net[0].weight.shape) == (4, 3)
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), model[0].weight.T)
    x = np.random.default_rng(0).standard_normal((5, 3))
    assert_close(net(torch.from_numpy(x)).detach().numpy(), model(x))
    net32 = to_torch(model, device="cpu", dtype="float32")
    assert net32[2].bias.dtype == torch.float32
    assert to_torch(model, dtype=torch.float32)[0].weight.dtype == torch.float32
    assert all(p.requires_grad for p in net.parameters())


def test_to_torch_of_single_layers():
    assert isinstance(to_torch(Linear(2, 3, seed=0)), nn.Linear)
    assert isinstance(to_torch(ReLU()), nn.ReLU)
    assert to_torch(LeakyReLU(0.3)).negative_slope == 0.3
    assert to_torch(GELU()).approximate == "none"
    assert to_torch(GELU("tanh")).approximate == "tanh"
    assert to_torch(Softmax(axis=0)).dim == 0
    assert to_torch(LogSoftmax(axis=1)).dim == 1
    assert to_torch(Dropout(0.25)).p == 0.25


def test_to_torch_leaves_torch_random_state_alone():
    model = Sequential(Linear(30, 40, seed=0), Linear(40, 2, seed=1))
    state = torch.get_rng_state()
    to_torch(model)
    assert torch.equal(torch.get_rng_state(), state)


def test_to_torch_of_a_wrapped_model_gives_plain_parameters():
    model = Sequential(Linear(3, 2, seed=0)).to(torch)
    TorchModule(model)
    net = to_torch(model)
    assert net[0].weight is not model[0].weight
    assert net[0].weight.grad_fn is None
    assert net[0].weight.is_leaf


# -- TorchModule and XpnnFunction ------------------------------------------------


def smooth_model(dtype: str = "float64") -> Module:
    return Sequential(
        Linear(4, 6, seed=0),
        Tanh(),
        Linear(6, 5, seed=1),
        GELU(),
        Linear(5, 5, seed=2),
        Sigmoid(),
        LeakyReLU(0.1),
        Linear(5, 3, seed=3),
        LogSoftmax(axis=-1),
    ).to(torch, dtype=dtype)


def test_wrapper_registers_the_model_tensors_themselves():
    model = smooth_model()
    net = TorchModule(model)
    names = [name for name, _ in net.named_parameters()]
    assert names == [name for name, _ in model.named_parameters()]
    for (_, ours), theirs in zip(net.named_parameters(), model.parameters(), strict=True):
        assert ours is theirs
        assert isinstance(ours, nn.Parameter)
    assert list(net.state_dict()) == names
    assert "Sequential" in repr(net)


def test_gradcheck_inputs_and_parameters_in_float64():
    model = smooth_model()
    net = TorchModule(model)
    params = tuple(net.parameters())
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    # gradcheck perturbs the parameters in place: they are the model's own.
    assert torch.autograd.gradcheck(lambda x, *ps: net(x), (x, *params))


def test_gradcheck_with_softmax_relu_and_nested_sequential():
    model = Sequential(
        Sequential(Linear(3, 5, seed=4), ReLU()), Linear(5, 4, seed=5), Softmax(axis=0)
    ).to(torch)
    net = TorchModule(model)
    x = torch.randn(6, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *ps: net(x), (x, *net.parameters()))


def test_a_second_backward_needs_retain_graph_as_in_torch():
    net = TorchModule(smooth_model())
    x = torch.randn(3, 4, dtype=F64)
    loss = net(x).sum()  # a sum keeps nothing: only the xpnn node could refuse
    loss.backward(retain_graph=True)
    once = [p.grad.clone() for p in net.parameters()]
    loss.backward()  # torch allows it, and so does the closure: the gradients add
    for param, grad in zip(net.parameters(), once, strict=True):
        torch.testing.assert_close(param.grad, 2 * grad)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        loss.backward()
    for param, grad in zip(net.parameters(), once, strict=True):
        torch.testing.assert_close(param.grad, 2 * grad)


def test_function_used_directly_passes_gradcheck():
    model = smooth_model()
    TorchModule(model)  # makes the parameters leaves that require gradients
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, *ps: XpnnFunction.apply(model, x, *ps), (x, *model.parameters())
    )


def test_tied_weights_stay_one_parameter():
    model = Sequential(Linear(3, 3, seed=0), Tanh(), Linear(3, 3, seed=1)).to(torch)
    model[2].set_parameter("weight", model[0].weight)
    net = TorchModule(model)
    assert model[0].weight is model[2].weight
    assert len(list(net.parameters())) == 3
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    # The shared weight's gradient is the sum over both of its uses.
    assert torch.autograd.gradcheck(lambda x, *ps: net(x), (x, *net.parameters()))


def test_wrapper_follows_torch_dtype_conversion():
    """Module.float() changes the Parameters in place: the model sees it."""
    model = Sequential(Linear(3, 2, seed=0)).to(torch)
    net = TorchModule(model).float()
    assert model[0].weight.dtype == torch.float32
    y = net(torch.randn(4, 3))
    y.sum().backward()
    assert y.dtype == net.get_parameter("0.weight").grad.dtype == torch.float32


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optim_steps_equal_pure_torch_autograd(optimizer):
    model = Sequential(
        Linear(4, 8, seed=0), Tanh(), Linear(8, 8, seed=1), ReLU(), Linear(8, 2, seed=2)
    ).to(torch)
    # The oracle is built by hand, not with to_torch, and trained by autograd.
    oracle = nn.Sequential(
        nn.Linear(4, 8, dtype=F64),
        nn.Tanh(),
        nn.Linear(8, 8, dtype=F64),
        nn.ReLU(),
        nn.Linear(8, 2, dtype=F64),
    )
    with torch.no_grad():
        for index in (0, 2, 4):
            oracle[index].weight.copy_(model[index].weight.T)
            oracle[index].bias.copy_(model[index].bias)
    net = TorchModule(model)

    def make(params):
        if optimizer == "sgd":
            return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01)
        return torch.optim.Adam(params, lr=0.01)

    ours, theirs = make(net.parameters()), make(oracle.parameters())
    generator = torch.Generator().manual_seed(0)
    for step in range(5):
        x = torch.randn(16, 4, dtype=F64, generator=generator)
        target = torch.randn(16, 2, dtype=F64, generator=generator)
        losses = []
        for module, opt in ((net, ours), (oracle, theirs)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(module(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-12), step
        for name, value in model.named_parameters():
            expected = torch.from_numpy(torch_value(oracle, name))
            assert_close(value.detach(), expected, err_msg=f"{name}, step {step}")
    # The optimizer updated the xpnn model itself.
    assert model[0].weight is net.get_parameter("0.weight")
    assert all(grad is None for _, grad in model.named_gradients())


def test_torch_accumulates_across_backward_calls():
    model = Sequential(Linear(3, 2, seed=0)).to(torch)
    net = TorchModule(model)
    x = torch.randn(4, 3, dtype=F64)
    net(x).sum().backward()
    once = net.get_parameter("0.weight").grad.clone()
    net(x).sum().backward()
    assert torch.allclose(net.get_parameter("0.weight").grad, 2 * once)
    assert model[0].grads == {"weight": None, "bias": None}


def test_input_gradient_and_frozen_parameters():
    model = Sequential(Linear(3, 4, seed=0), Tanh(), Linear(4, 2, seed=1)).to(torch)
    net = TorchModule(model)
    net.get_parameter("0.weight").requires_grad_(False)
    x = torch.randn(5, 3, dtype=F64, requires_grad=True)
    net(x).square().sum().backward()
    assert net.get_parameter("0.weight").grad is None
    assert net.get_parameter("0.bias").grad is not None
    oracle = to_torch(model)
    tx = x.detach().clone().requires_grad_(True)
    oracle(tx).square().sum().backward()
    assert torch.allclose(x.grad, tx.grad)
    assert torch.allclose(net.get_parameter("2.weight").grad, oracle[2].weight.grad.T)


def test_no_grad_runs_the_model_alone():
    model = smooth_model()
    net = TorchModule(model)
    x = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        y = net(x)
    assert not y.requires_grad
    assert torch.equal(y, net(x).detach())
    assert net(x).requires_grad


def test_dropout_follows_train_and_eval():
    model = Sequential(Linear(10, 50, seed=0), Dropout(0.5, seed=1)).to(torch)
    model.eval()
    net = TorchModule(model)
    assert not net.training  # the module starts in the model's mode
    x = torch.randn(4, 10, dtype=F64)
    plain = model[0](x)
    assert torch.equal(net(x).detach(), plain)
    net.train()
    assert model.training
    assert model[1].training
    y = net(x)
    dropped = y == 0
    assert 0 < int(dropped.sum()) < y.numel()
    assert torch.allclose(y[~dropped], 2 * plain[~dropped])
    # The backward pass uses the forward's mask.
    weight = net.get_parameter("0.weight")
    y.sum().backward()
    mask = (~dropped).to(F64) * 2
    assert torch.allclose(weight.grad, x.T @ mask)
    net.eval()
    assert not model[1].training
    assert torch.equal(net(x).detach(), plain)
    net.training = True  # set without train(): still followed
    net(x)
    assert model[1].training


def test_returning_the_input_itself_is_fine():
    """Dropout in eval returns x itself; autograd still gets a proper output."""
    net = TorchModule(Sequential(Dropout(0.5)).eval())
    x = torch.randn(3, 2, dtype=F64, requires_grad=True)
    net(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_double_backward_is_refused():
    net = TorchModule(smooth_model())
    x = torch.randn(2, 4, dtype=F64, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"create_graph=True\) are not available"):
        torch.autograd.grad(net(x).sum(), x, create_graph=True)


# -- errors ----------------------------------------------------------------------


def test_unsupported_module_is_named_with_what_is_supported(monkeypatch):
    def must_not_build(*args, **kwargs):
        raise AssertionError("built before the checks")

    monkeypatch.setattr(convert, "_from_torch", must_not_build)
    with pytest.raises(TypeError, match=r"torch.nn.modules.conv.Conv3d.*nn.Linear, nn.Sequential"):
        from_torch(nn.Conv3d(1, 1, 3))
    with pytest.raises(TypeError, match=r"Hardswish at '1'.*it converts nn.Linear"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.Hardswish()))
    with pytest.raises(TypeError, match=r"BatchNorm3d at '0.1'"):
        from_torch(nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm3d(2))))
    with pytest.raises(ValueError, match=r"Softmax\(dim=None\) at '0'.*explicit dim"):
        from_torch(nn.Sequential(nn.Softmax()))
    with pytest.raises(TypeError, match="from_torch takes a torch.nn.Module, got numpy"):
        from_torch(np.ones(3))


def test_subclasses_are_refused():
    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(TypeError, match=r"Scaled .*subclasses are refused"):
        from_torch(Scaled(2, 2))

    class Custom(Tanh):
        pass

    with pytest.raises(TypeError, match=r"to_torch cannot convert .*Custom at '1'.*Linear"):
        to_torch(Sequential(Linear(2, 2), Custom()))
    with pytest.raises(TypeError, match="to_torch takes an xpnn.Module"):
        to_torch(nn.Linear(2, 2))


def test_wrong_xp_fails_before_copying():
    with pytest.raises(TypeError, match="xp must be an array library module"):
        from_torch(nn.Linear(2, 2), xp="numpy")


def test_wrapper_needs_torch_parameters_and_changes_nothing_otherwise():
    model = Sequential(Linear(3, 2, seed=0), ReLU(), Linear(2, 1, seed=1))
    weight = model[0].weight
    with pytest.raises(TypeError, match=r"got numpy.ndarray for '0.weight'.*model.to\(torch"):
        TorchModule(model)
    assert model[0].weight is weight
    with pytest.raises(TypeError, match="TorchModule wraps an xpnn.Module"):
        TorchModule(nn.Linear(2, 2))
    net = TorchModule(model.to(torch))
    with pytest.raises(TypeError, match=r"takes a torch.Tensor, got numpy.ndarray"):
        net(np.ones((2, 3)))


def test_moving_a_wrapped_model_is_caught():
    model = Sequential(Linear(3, 2, seed=0)).to(torch)
    net = TorchModule(model)
    model.to(torch, dtype="float32")
    with pytest.raises(RuntimeError, match=r"no longer the tensors.*wrap the model again"):
        net(torch.ones(2, 3))


def test_function_needs_the_model_own_parameters():
    model = Sequential(Linear(3, 2, seed=0)).to(torch)
    others = [p.clone().requires_grad_(True) for p in model.parameters()]
    with pytest.raises(ValueError, match=r"model's own 2 parameter tensors"):
        XpnnFunction.apply(model, torch.ones(2, 3, dtype=F64), *others)
