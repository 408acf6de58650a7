"""Single-step distillation (DMD) with DMD2's and CARV's gradient estimators: `carv distill`.

objective.py is the math (pure PyTorch on carv's sampler and estimator); networks, step, measure, quality, run,
files, command and cli are thin adapters. Import the submodules by path.
"""
