"""Exchange with other libraries and frameworks.

The modules here are the only ones in xpnn that know a particular library;
each imports its library when it is used, never when xpnn is imported:

- :mod:`xpnn.interop.torch`: models from and to ``torch.nn`` modules, and a
  ``torch.autograd.Function`` that runs an xpnn model inside PyTorch's own
  training loops;
- :mod:`xpnn.interop.jax`: an xpnn model as a ``jax.custom_vjp`` function,
  for ``jax.grad`` and ``jax.jit``;
- :mod:`xpnn.interop.sklearn`: models from fitted scikit-learn
  ``MLPClassifier`` / ``MLPRegressor`` estimators;
- :mod:`xpnn.interop.step`: a training step as a pure function of explicit
  parameters and optimizer state, which ``jax.jit``
  (:func:`xpnn.interop.jax.train_step`) and ``torch.compile``
  (:func:`xpnn.interop.torch.compiled_step`) compile.

Moving arrays between libraries and devices, what :meth:`xpnn.Module.to`
and :func:`xpnn.load` use, lies below the layers, in ``xpnn._transfer``.
"""
