"""The CPU text-to-3D pipeline: a voxel-grid NeRF trained with CARV score distillation on pytorch-lightning.

Adapters only (config, field, cameras, prompts, Lightning system, runner, videos); the
sampling math is carv's. Imports diffusers and Lightning, so import submodules by path.
"""
