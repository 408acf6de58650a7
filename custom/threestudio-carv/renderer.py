"""carv-batched-volume-renderer: threestudio's VolumeRenderer on the batched CPU renderer of carv.render.

Every ray carries `num_samples_per_ray` stratified samples inside the bounding cube, so no
nerfacc CUDA kernel (occupancy grid, packed samples) is needed: it runs on the CPU.
"""

from dataclasses import dataclass

import torch.nn.functional as F
from threestudio.models.renderers.base import VolumeRenderer
from threestudio.utils.ops import chunk_batch

from carv.render import composite, ray_box_bounds, stratified_samples

from .registration import register_once


@register_once("carv-batched-volume-renderer")
class CarvBatchedVolumeRenderer(VolumeRenderer):
    @dataclass
    class Config(VolumeRenderer.Config):
        num_samples_per_ray: int = 64  # samples per ray inside the bounding cube
        randomized: bool = True  # stratified jitter while training; bin centres in eval
        eval_chunk_size: int = 16384  # rays per chunk outside training (0 = all at once)

    cfg: Config

    def render_rays(self, rays_o, rays_d, light_positions, background, **kwargs) -> dict:
        """Per-ray outputs for rays [N, 3] (lights and background [N, 3]); per-sample ones [N * S, ...] in training."""
        near, far = ray_box_bounds(rays_o, rays_d, self.cfg.radius)
        stratified = self.training and self.cfg.randomized
        samples = stratified_samples(near, far, self.cfg.num_samples_per_ray, stratified=stratified)
        n_rays, n_samples = samples.t_starts.shape
        points = samples.positions(rays_o, rays_d).reshape(-1, 3)
        dirs = rays_d[:, None, :].expand(-1, n_samples, -1).reshape(-1, 3)
        lights = light_positions[:, None, :].expand(-1, n_samples, -1).reshape(-1, 3)
        geo_out = self.geometry(points, output_normal=self.material.requires_normal)
        rgb = self.material(viewdirs=dirs, positions=points, light_positions=lights, **geo_out, **kwargs)
        density = geo_out["density"].reshape(n_rays, n_samples)
        result = composite(samples, density, rgb.reshape(n_rays, n_samples, -1), background)
        out = {"comp_rgb": result.rgb, "comp_rgb_fg": result.rgb_fg, "opacity": result.opacity, "depth": result.depth}
        if "normal" in geo_out:
            normal = geo_out["normal"].reshape(n_rays, n_samples, 3)
            comp_normal = F.normalize((result.weights[..., None] * normal).sum(dim=1), dim=-1)
            out["comp_normal"] = (comp_normal + 1.0) / 2.0 * result.opacity
        if self.training:
            intervals = samples.t_ends - samples.t_starts
            out.update(weights=result.weights.reshape(-1, 1), t_points=samples.midpoints.reshape(-1, 1))
            out.update(t_intervals=intervals.reshape(-1, 1), t_dirs=dirs, points=points, **geo_out)
        return out

    def background_colors(self, rays_d, bg_color):
        """The background module's colours [B, H, W, 3] and the ones to composite over, per ray [N, 3]."""
        batch_size, height, width = rays_d.shape[:3]
        comp_rgb_bg = self.background(dirs=rays_d)
        if bg_color is None:
            bg_color = comp_rgb_bg
        elif bg_color.shape[:-1] == (batch_size,):
            bg_color = bg_color[:, None, None, :].expand(-1, height, width, -1)
        return comp_rgb_bg, bg_color.reshape(batch_size * height * width, -1)

    def forward(self, rays_o, rays_d, light_positions, bg_color=None, **kwargs):
        """threestudio's renderer outputs for rays [B, H, W, 3]: images [B, H, W, C], samples in training."""
        batch_size, height, width = rays_o.shape[:3]
        lights = light_positions.reshape(-1, 1, 1, 3).expand(-1, height, width, -1).reshape(-1, 3)
        comp_rgb_bg, background = self.background_colors(rays_d, bg_color)
        rays = (rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), lights, background)
        if self.training:
            out = self.render_rays(*rays, **kwargs)
        else:
            out = chunk_batch(self.render_rays, self.cfg.eval_chunk_size, *rays)  # as threestudio: no kwargs in eval
        out["comp_rgb_bg"] = comp_rgb_bg
        image_keys = ("comp_rgb", "comp_rgb_fg", "comp_rgb_bg", "opacity", "depth", "comp_normal")
        for key in image_keys:
            if key in out:
                out[key] = out[key].reshape(batch_size, height, width, -1)
        return out
