"""The toy world: procedural 3D objects, threestudio-style cameras, a judge and an embedded teacher.

World, cameras, renderer and judge are pure PyTorch; ``carv.toyworld.teacher``
(training the Stable-Diffusion-format teacher) imports diffusers and is only
imported by path.
"""
