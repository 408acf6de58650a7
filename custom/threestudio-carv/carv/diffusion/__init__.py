"""The diffusers adapter: a DiffusionTeacher over a local diffusers folder, and the network builders.

Imports diffusers and transformers; import the modules by path (carv.diffusion.teacher).
"""
