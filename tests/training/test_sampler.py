import torch

from deepfake_lab.training.sampler import InfiniteSampler


def test_epochs_are_permutations_and_state_resumes():
    s = InfiniteSampler(10, seed=1)
    first = torch.cat([s.next_batch(4) for _ in range(5)])  # 20 = two epochs
    assert sorted(first[:10].tolist()) == list(range(10))
    assert sorted(first[10:].tolist()) == list(range(10))
    assert first[:10].tolist() != first[10:].tolist()

    a = InfiniteSampler(10, seed=1)
    a.next_batch(7)
    state = a.state_dict()
    expected = [a.next_batch(6).tolist() for _ in range(3)]
    b = InfiniteSampler(10, seed=99)
    b.load_state_dict(state)
    assert [b.next_batch(6).tolist() for _ in range(3)] == expected
