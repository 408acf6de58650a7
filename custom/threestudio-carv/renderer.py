"""carv-batched-volume-renderer: threestudio's VolumeRenderer on the batched CPU renderer of carv.render.

Every ray carries `num_samples_per_ray` stratified samples inside the bounding cube, so no
nerfacc CUDA kernel (occupancy grid, packed samples) is needed: it runs on the CPU.
"""

from dataclasses import dataclass

import torch.nn.functional as F
from carv.render import RaySamples, composite, ray_box_bounds, stratified_samples
from threestudio.models.renderers.base import VolumeRenderer

from .registration import register_once


@register_once("carv-batched-volume-renderer")
class CarvBatchedVolumeRenderer(VolumeRenderer):
    @dataclass
    class Config(VolumeRenderer.Config):
        num_samples_per_ray: int = 64  # samples per ray inside the bounding cube
        randomized: bool = True  # stratified jitter while training; bin centres in eval

    cfg: Config

    def _field(self, samples: RaySamples, rays_o, rays_d, light_positions, **kwargs):
        """Query geometry and material at every sample: density [N, S], rgb [N, S, 3], geometry outputs."""
        positions = samples.positions(rays_o, rays_d)
        n_rays, n_samples = positions.shape[:2]
        flat_positions = positions.reshape(-1, 3)
        flat_dirs = rays_d[:, None, :].expand(-1, n_samples, -1).reshape(-1, 3)
        flat_lights = light_positions[:, None, :].expand(-1, n_samples, -1).reshape(-1, 3)
        geo_out = self.geometry(flat_positions, output_normal=self.material.requires_normal)
        rgb = self.material(
            viewdirs=flat_dirs, positions=flat_positions, light_positions=flat_lights, **geo_out, **kwargs
        )
        density = geo_out["density"].reshape(n_rays, n_samples)
        return density, rgb.reshape(n_rays, n_samples, -1), geo_out, flat_dirs, flat_positions

    def _background(self, rays_d_image, bg_color):
        """Background per ray [N, 3]: the background module's, or a given [B, 3] / [B, H, W, 3] colour."""
        batch_size, height, width = rays_d_image.shape[:3]
        comp_rgb_bg = self.background(dirs=rays_d_image)
        if bg_color is None:
            bg_color = comp_rgb_bg
        elif bg_color.shape[:-1] == (batch_size,):
            bg_color = bg_color[:, None, None, :].expand(-1, height, width, -1)
        return comp_rgb_bg, bg_color.reshape(batch_size * height * width, -1)

    def forward(self, rays_o, rays_d, light_positions, bg_color=None, **kwargs):
        batch_size, height, width = rays_o.shape[:3]
        image_shape = (batch_size, height, width, -1)
        flat_o, flat_d = rays_o.reshape(-1, 3), rays_d.reshape(-1, 3)
        lights = light_positions.reshape(-1, 1, 1, 3).expand(-1, height, width, -1).reshape(-1, 3)
        near, far = ray_box_bounds(flat_o, flat_d, self.cfg.radius)
        stratified = self.training and self.cfg.randomized
        samples = stratified_samples(near, far, self.cfg.num_samples_per_ray, stratified=stratified)
        density, rgb, geo_out, flat_dirs, points = self._field(samples, flat_o, flat_d, lights, **kwargs)
        comp_rgb_bg, background = self._background(rays_d, bg_color)
        result = composite(samples, density, rgb, background)
        out = {
            "comp_rgb": result.rgb.view(image_shape),
            "comp_rgb_fg": result.rgb_fg.view(image_shape),
            "comp_rgb_bg": comp_rgb_bg.view(image_shape),
            "opacity": result.opacity.view(image_shape),
            "depth": result.depth.view(image_shape),
        }
        if "normal" in geo_out:
            normal = geo_out["normal"].reshape(*density.shape, 3)
            comp_normal = F.normalize((result.weights[..., None] * normal).sum(dim=1), dim=-1)
            out["comp_normal"] = ((comp_normal + 1.0) / 2.0 * result.opacity).view(image_shape)
        if self.training:
            out.update(
                {
                    "weights": result.weights.reshape(-1, 1),
                    "t_points": samples.midpoints.reshape(-1, 1),
                    "t_intervals": (samples.t_ends - samples.t_starts).reshape(-1, 1),
                    "t_dirs": flat_dirs,
                    "points": points,
                    **geo_out,
                }
            )
        return out
