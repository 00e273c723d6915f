import torch

from vidcodec.quant.golay import BLOCK, golay_codewords, golay_generator


def test_weight_distribution_of_the_extended_golay_code():
    words = golay_codewords()
    assert words.shape == (4096, 24) and words.dtype == torch.int64
    assert len(torch.unique(words, dim=0)) == 4096
    weights, counts = torch.unique(words.sum(-1), return_counts=True)
    assert dict(zip(weights.tolist(), counts.tolist())) == {0: 1, 8: 759, 12: 2576, 16: 759, 24: 1}


def test_codewords_are_closed_under_addition_and_match_the_generator():
    words = golay_codewords()
    as_set = {tuple(w) for w in words.tolist()}
    g = torch.Generator().manual_seed(0)
    a, b = words[torch.randint(0, 4096, (500,), generator=g)], words[torch.randint(0, 4096, (500,), generator=g)]
    assert all(tuple(w) in as_set for w in ((a + b) % 2).tolist())
    # Codeword index = message bits on the generator rows.
    generator = golay_generator()
    assert torch.equal(words[1], generator[0]) and torch.equal(words[1 << 11], generator[11])
    assert torch.equal(words[3], (generator[0] + generator[1]) % 2)


def test_turyn_blocks_a_word_zero_on_two_blocks_is_zero_or_all_ones_on_the_third():
    """The property the Leech decoder relies on: lattice vectors on one block form 4 E8."""
    words = golay_codewords()
    blocks = words.reshape(-1, 3, BLOCK)
    for b in range(3):
        others = [o for o in range(3) if o != b]
        alone = blocks[(blocks[:, others].sum((-1, -2)) == 0)][:, b]
        assert sorted(alone.sum(-1).tolist()) == [0, BLOCK]
