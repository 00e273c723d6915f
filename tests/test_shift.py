import torch

from vidcodec.shift import entropy_gradient_gaussian


def discretized_nll(y, mu, sigma):
    """-log P written with -|y - mu| (the same function), so that float64 autograd does not lose
    the difference of two CDFs close to 1."""
    u = -(y - mu).abs()
    normal = torch.distributions.Normal(torch.zeros_like(mu), sigma)
    return -torch.log(normal.cdf(u + 0.5) - normal.cdf(u - 0.5))


def test_gradient_matches_autograd_where_the_likelihood_is_representable():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5000, generator=g, dtype=torch.float64) * 3
    sigma = torch.exp(torch.randn(5000, generator=g, dtype=torch.float64)).clamp(0.11, 50)
    y = (mu + torch.randn(5000, generator=g, dtype=torch.float64) * sigma * 2).round() + 0.25
    y.requires_grad_(True)
    discretized_nll(y, mu, sigma).sum().backward()
    ours = entropy_gradient_gaussian(y.detach(), mu, sigma)
    # The reference's erf-based CDF loses relative precision in the tails: compare tightly within
    # 4 sigma and loosely beyond.
    finite = torch.isfinite(y.grad)
    near = finite & (((y.detach() - mu) / sigma).abs() < 4)
    assert near.float().mean() > 0.8
    assert torch.allclose(ours[near], y.grad[near], rtol=1e-8, atol=1e-10)
    assert torch.allclose(ours[finite], y.grad[finite], rtol=1e-4)


def test_gradient_stays_finite_and_tends_to_the_continuous_limit_in_far_tails():
    mu = torch.zeros(4, dtype=torch.float64)
    sigma = torch.full((4,), 0.2, dtype=torch.float64)
    y = torch.tensor([-40.0, -15.0, 15.0, 40.0], dtype=torch.float64)  # P underflows in float64 here
    gradient = entropy_gradient_gaussian(y, mu, sigma)
    assert torch.isfinite(gradient).all()
    assert torch.allclose(gradient, y / sigma**2, rtol=0.05)
    assert (gradient.sign() == y.sign()).all()


def test_gradient_is_zero_at_the_mean_and_antisymmetric():
    sigma = torch.tensor([0.5, 2.0])
    assert torch.allclose(entropy_gradient_gaussian(torch.zeros(2), torch.zeros(2), sigma), torch.zeros(2))
    y = torch.tensor([1.0, 3.0])
    assert torch.allclose(entropy_gradient_gaussian(y, torch.zeros(2), sigma),
                          -entropy_gradient_gaussian(-y, torch.zeros(2), sigma))
