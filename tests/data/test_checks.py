"""Label checks before training: objects counted lazily, slab by slab, stopping early."""

import numpy as np
import pytest

from neuroadda.data.checks import object_ids, require_objects, require_sample_objects
from neuroadda.data.volume import open_volume
from neuroadda.errors import InputError


class CountingReader:
    """A (z, y, x) array behind ``read(box)`` that records every box read."""

    def __init__(self, a):
        self.a, self.shape, self.reads = a, a.shape, []

    def read(self, box):
        self.reads.append(box)
        return self.a[box]


def test_object_ids_match_a_brute_force_count():
    rng = np.random.default_rng(0)
    for trial in range(20):
        a = np.where(rng.random((9, 7, 5)) < 0.05 * (trial % 4), rng.integers(1, 4, (9, 7, 5)), 0).astype(np.uint64)
        box = (slice(2, 8), slice(1, 7), slice(0, 4))
        for limit in (1, 2, 3):
            for b in (None, box):
                ref = np.unique(a[b or (slice(None),) * 3])
                ref = ref[ref != 0]
                got = object_ids(a, b, limit=limit, max_voxels=20)  # slabs of 1 plane: many slab borders
                assert len(got) == min(limit, ref.size) and len(set(got)) == len(got) and set(got) <= set(ref.tolist())


def test_stops_after_the_first_slab_that_shows_two_objects():
    a = np.zeros((64, 32, 32), np.uint64)
    a[1, :, :16], a[1, :, 16:] = 5, 2**63 + 9  # 64-bit ids compared exactly
    r = CountingReader(a)
    assert object_ids(r, max_voxels=4 * 32 * 32) == [5, 2**63 + 9]
    assert len(r.reads) == 1 and r.reads[0][0] == slice(0, 4)
    r = CountingReader(np.zeros_like(a))  # an empty volume is read to the end, 4 planes at a time
    assert object_ids(r, max_voxels=4 * 32 * 32) == []
    assert len(r.reads) == 16 and all(b[0].stop - b[0].start == 4 for b in r.reads)


def test_require_objects_messages_name_the_array(tiny_h5):
    vol = open_volume(str(tiny_h5))
    require_objects(vol.labels, vol.labels.name)  # blob labels: many objects
    zeros = np.zeros((4, 5, 6), np.uint64)
    with pytest.raises(InputError, match=r"^f.h5:labels: labels hold no object \(every voxel is 0\)"):
        require_objects(zeros, "f.h5:labels")
    one = zeros.copy()
    one[2] = 3
    with pytest.raises(InputError, match=r"a single object \(id 3\)"):
        require_objects(one, "f.h5:labels")
    require_objects(one, "f.h5:labels", minimum=1)
    with pytest.raises(InputError, match=r"labels of the held-out region in 0:2 x 0:5 x 0:6 hold no object"):
        require_objects(one, "f.h5:labels", (slice(0, 2), slice(None), slice(None)), minimum=1,
                        what="labels of the held-out region")


def test_require_sample_objects():
    a, b = np.zeros((2, 3, 3), np.uint32), np.zeros((2, 3, 3), np.uint32)
    a[0], b[1] = 4, 4
    with pytest.raises(InputError, match=r"single object \(id 4\) in all"):
        require_sample_objects([a, b], ["s0", "s1"])
    b[1, 0] = 9
    require_sample_objects([a, b], ["s0", "s1"])
    with pytest.raises(InputError, match=r"^s2: the labels of this sample hold no object"):
        require_sample_objects([a, b, np.zeros_like(a)], ["s0", "s1", "s2"])
