"""The fake-score (critic) update learns from the student's samples only, and never moves the student."""

import torch

import carv
from carv.distill import run as run_module
from carv.distill import step as step_module
from carv.distill.objective import EstimatorSetting
from carv.distill.step import critic_step, dmd_step, generate


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_critic_inputs_are_the_student_samples_noised(scores, student):
    """Every input the head sees in a critic update is add_noise(student sample, eps, t) for the update's own draws."""
    batch = generate(student, scores, 3, scores.teacher_shape, seeded(0))
    seen = []
    hook = scores.head.register_forward_hook(lambda module, args, out: seen.append((args[0].detach(), args[1])))
    generator = seeded(1)
    replay = seeded(1)
    optimizer = torch.optim.SGD(scores.head.parameters(), lr=0.0)
    before = [p.detach().clone() for p in student.parameters()]
    critic_step(scores, optimizer, batch, 2, generator)
    hook.remove()
    alphas = scores.teacher.alphas_cumprod
    t = torch.randint(0, alphas.shape[0], (2,), generator=replay)
    eps = torch.randn((2, *scores.teacher_shape), generator=replay)
    ((x_t, t_seen),) = seen
    torch.testing.assert_close(t_seen, t)
    torch.testing.assert_close(x_t, carv.add_noise(batch.latents[:2].detach(), eps, t, alphas))
    assert all(p.grad is None for p in student.parameters())  # the critic loss reached no student parameter
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters(), strict=True))


def test_training_loop_feeds_the_critic_fresh_student_samples(scores, monkeypatch):
    """In carv.distill.run.train every critic batch is the student's latest G(z, y) (the step's own, then fresh ones,
    as DMD2 generates each iteration): a teacher or reference sample leaking in would not be that tensor."""
    generated, checked, original = [], [], step_module.generate

    def recording_generate(student, scores_, n, shape, generator):
        batch = original(student, scores_, n, shape, generator)
        with torch.no_grad():
            generated.append((batch, step_module.student_latents(student, scores_, batch.noise, batch.prompts)))
        return batch

    def checking_critic(scores_, optimizer, batch, size, generator):
        latest, expected = generated[-1]
        assert batch is latest
        torch.testing.assert_close(batch.latents.detach(), expected)
        checked.append(size)
        return 0.0

    monkeypatch.setattr(step_module, "generate", recording_generate, raising=True)
    monkeypatch.setattr(run_module, "critic_step", checking_critic)
    monkeypatch.setattr(run_module, "one_step_samples", lambda *a: None)
    monkeypatch.setattr(run_module, "evaluate", lambda *a: {"fidelity": {"mean": 0.0, "se": 0.0}, "frechet": 0.0})
    world = run_module.World(scores.teacher, None, scores.cond, scores.uncond, None, None, None)
    options = run_module.DistillOptions(steps=2, samples=2, k=2, fake_updates=2, checkpoints=1, eval_every=5)
    settings = {"baseline": EstimatorSetting("baseline", 4, 1), "carv": EstimatorSetting("carv", 2, 2, "sds", True)}

    class Progress:
        def update(self, n):
            pass

        def set_postfix_str(self, text):
            pass

    run_module.train("baseline", world, settings, options, None, Progress())
    assert checked == [2, 2, 2, 2]  # two updates per step, on R = 2 of the baseline's 4 samples
    assert len(generated) == 4  # per step: the student update's batch, then a fresh batch for the second update


def test_dmd_step_back_propagates_into_the_student_only(scores, student):
    setting = EstimatorSetting("carv", 2, 2, "sds", True)
    sampler = carv.make_timestep_sampler("sds", stratified=True, min_step=20, max_step=980)
    dmd_step(student, scores, setting, sampler, seeded(2))
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in scores.head.parameters())
