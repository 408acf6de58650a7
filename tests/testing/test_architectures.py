"""The benchmark architectures: SD 2.1-base's exact parameter counts (built on the meta device), a runnable mid-size."""

import torch

from carv.testing.architectures import mid_size_sd_teacher, sd21_base_modules

SD2_UNET_PARAMETERS = 865_910_724  # stabilityai/stable-diffusion-2-1-base unet
SD2_VAE_PARAMETERS = 83_653_863  # its AutoencoderKL


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_sd21_base_layout_has_the_released_parameter_counts():
    with torch.device("meta"):
        unet, vae = sd21_base_modules()
    assert (count(unet), count(vae)) == (SD2_UNET_PARAMETERS, SD2_VAE_PARAMETERS)


def test_mid_size_teacher_encodes_to_32x32_latents():
    teacher = mid_size_sd_teacher()
    assert teacher.native_resolution == 256
    with torch.no_grad():
        latents = teacher.encode(torch.zeros(1, 3, 256, 256))
    assert latents.shape == (1, 4, 32, 32)
