"""The extended binary Golay code G24 [24, 12, 8], built by Turyn's construction from two Hamming codes.

    G24 = { (a + x, b + x, a + b + x) : a, b in H, x in H' }   (sums mod 2, blocks of 8 bits)

with H an extended Hamming code [8, 4, 4] and H' a coordinate permutation of H such that
H and H' share only 0 and 1^8 (MacWilliams & Sloane, ch. 18 sec. 7.4). The three 8-bit blocks are
what the Leech lattice decoder (quant/leech.py) rests on: a codeword with two zero blocks has
1^8 or 0 in the third, so the Leech lattice built on this code contains three orthogonal copies of
a scaled E8, one per block.
"""

from __future__ import annotations

from functools import cache

import torch

# Extended Hamming code [8, 4, 4]: 14 words of weight 4, 0 and 1^8.
HAMMING_GENERATOR = ((1, 1, 1, 1, 0, 0, 0, 0),
                     (0, 0, 1, 1, 1, 1, 0, 0),
                     (0, 0, 0, 0, 1, 1, 1, 1),
                     (0, 1, 0, 1, 0, 1, 0, 1))
# H' = H with its columns taken in this order. Found by search over permutations: the first for
# which H and H' meet only in {0, 1^8} and the Turyn code reaches minimum weight 8 (plain reversal
# does not, for this H). tests/test_quant_golay.py checks the weight distribution.
TURYN_PERMUTATION = (0, 1, 2, 4, 3, 6, 7, 5)
BLOCK = 8


def golay_generator() -> torch.Tensor:
    """(12, 24) int64 0/1 generator rows: (h, 0, h) for h in H, (0, h, h), (h', h', h') for h' in H'."""
    h = torch.tensor(HAMMING_GENERATOR, dtype=torch.int64)
    h_prime = h[:, list(TURYN_PERMUTATION)]
    zero = torch.zeros_like(h)
    return torch.cat([torch.cat([h, zero, h], 1), torch.cat([zero, h, h], 1),
                      torch.cat([h_prime, h_prime, h_prime], 1)])


@cache
def golay_codewords() -> torch.Tensor:
    """(4096, 24) int64 0/1: all codewords, in the order of the 12-bit messages m (codeword index =
    sum_k m_k 2^k for message bits m_k on the generator rows). Cached; do not modify in place."""
    generator = golay_generator()
    messages = (torch.arange(4096).unsqueeze(-1) >> torch.arange(12)) & 1
    return (messages @ generator) % 2
