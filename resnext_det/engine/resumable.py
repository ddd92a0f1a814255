"""Training randomness that a resumed run reproduces: the data order, the augmentations and the
random draws of each step depend only on the run's seed and on where in the run they happen.

Detectron2's defaults do not resume exactly: its ``TrainingSampler`` restarts its stream, the
augmentations draw from whatever state the loader's RNG is in, and RPN / ROI sampling draws from
the global RNG, whose state is not saved. Here:

* :class:`ResumableBatchSampler` makes the batches of ``TrainingSampler``'s stream (the same seeded
  infinite shuffle, every ``world_size``-th index to a rank, grouped by aspect ratio as Detectron2's
  ``AspectRatioGroupedDataset`` does) and can skip the first ``start`` batches of its rank;
* each image is mapped (augmented) with the RNGs seeded from the seed and its position in the
  stream (:class:`SeededMapDataset`);
* :class:`StepSeed` seeds the RNGs before every step from the seed, the rank and the iteration.
"""
import itertools
import logging
import random
from typing import List, Optional, Sequence

import numpy as np
import torch
from detectron2.data import DatasetFromList, DatasetMapper, get_detection_dataset_dicts
from detectron2.data.build import trivial_batch_collator
from detectron2.engine import HookBase
from detectron2.utils import comm
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError

__all__ = ["ResumableBatchSampler", "SeededMapDataset", "StepSeed", "build_resumable_train_loader",
           "derive_seed"]

logger = logging.getLogger(__name__)

_SAMPLE, _STEP = 0, 1  # keep the seeds of images and of steps apart


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from non-negative integers (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def seed_all(seed: int, cuda: bool = True) -> None:
    """Seed python's, numpy's and torch's RNGs (torch's CUDA ones too if ``cuda``)."""
    random.seed(seed)
    np.random.seed(seed)
    if cuda:
        torch.manual_seed(seed)
    else:  # torch.manual_seed would also queue a CUDA seeding, with a stack trace: 1 ms a call
        torch.random.default_generator.manual_seed(seed)


class ResumableBatchSampler(Sampler):
    """Infinite batches of ``(sample seed, dataset index)`` for this rank.

    The indices are ``TrainingSampler(size, seed=seed)``'s for this rank. Batches group images of
    one aspect-ratio bucket (``buckets[i]``, e.g. 0 for landscape and 1 for portrait) in arrival
    order, like ``AspectRatioGroupedDataset``. Set ``start`` (batches already trained on) before
    iterating to continue a run: the skipped batches are formed, not loaded.
    """

    def __init__(self, buckets: Sequence[int], batch_size: int, seed: int, shuffle: bool = True,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        if len(buckets) == 0 or batch_size <= 0:
            raise ValueError(f"need images and a positive batch size, got {len(buckets)} and {batch_size}")
        self.buckets = list(buckets)
        self.batch_size = batch_size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank = comm.get_rank() if rank is None else rank
        self.world_size = comm.get_world_size() if world_size is None else world_size
        self.start = 0

    def _stream(self):
        """(position in the stream of all ranks, index), for this rank."""
        g = torch.Generator()
        g.manual_seed(self.seed)
        size = len(self.buckets)

        def epochs():
            while True:
                yield from (torch.randperm(size, generator=g) if self.shuffle else torch.arange(size)).tolist()

        return itertools.islice(enumerate(epochs()), self.rank, None, self.world_size)

    def __iter__(self):
        pending = {}
        made = 0
        for position, index in self._stream():
            bucket = pending.setdefault(self.buckets[index], [])
            bucket.append((position, index))
            if len(bucket) == self.batch_size:
                if made >= self.start:
                    yield [(derive_seed(self.seed, _SAMPLE, p), i) for p, i in bucket]
                made += 1
                bucket.clear()


class SeededMapDataset(Dataset):
    """``mapper(dataset[index])`` for keys ``(seed, index)``, with python's, numpy's and torch's RNGs
    seeded from ``seed`` while mapping; the caller's RNG states are restored afterwards.

    Where the mapper returns None (an image it rejects), the next index is tried, as
    deterministically as the rest.
    """

    def __init__(self, dataset, mapper):
        self.dataset = dataset
        self.mapper = mapper

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        seed, index = key
        state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                seed_all(seed, cuda=False)
                for k in range(len(self.dataset)):
                    data = self.mapper(self.dataset[(index + k) % len(self.dataset)])
                    if data is not None:
                        if k:
                            logger.warning("mapper rejected image %d; used image %d", index,
                                           (index + k) % len(self.dataset))
                        return data
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
        raise RuntimeError("the dataset mapper returned None for every training image")


def aspect_buckets(dicts: List[dict]) -> List[int]:
    """AspectRatioGroupedDataset's buckets: 0 where width > height, else 1."""
    return [0 if d["width"] > d["height"] else 1 for d in dicts]


def build_resumable_train_loader(cfg, seed: int, mapper=None) -> DataLoader:
    """The training loader of ``cfg`` (its datasets, ``DatasetMapper(cfg, True)``, batch size,
    aspect-ratio grouping and workers), made of a :class:`ResumableBatchSampler` (reachable as
    ``loader.batch_sampler``) and a :class:`SeededMapDataset`."""
    dicts = get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
        proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None)
    world = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world:
        raise ConfigError(f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is not divisible by the "
                         f"{world} processes")
    batch_size = cfg.SOLVER.IMS_PER_BATCH // world
    buckets = aspect_buckets(dicts) if cfg.DATALOADER.ASPECT_RATIO_GROUPING else [0] * len(dicts)
    sampler = ResumableBatchSampler(buckets, batch_size, seed)
    dataset = SeededMapDataset(DatasetFromList(dicts, copy=False), mapper or DatasetMapper(cfg, True))
    logger.info("Resumable training loader: %d images, %d per batch on each of %d processes, seed %d",
                len(dicts), batch_size, world, seed)
    # Own generator: making the iterator must not draw from the global RNG (StepSeed's).
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
                      collate_fn=trivial_batch_collator, generator=torch.Generator().manual_seed(seed))


class StepSeed(HookBase):
    """Seeds python's, numpy's and torch's RNGs before each step from (trainer.seed, rank,
    iteration), so that a step's random draws do not depend on what ran before it."""

    def before_step(self):
        seed_all(derive_seed(self.trainer.seed, _STEP, comm.get_rank(), self.trainer.iter))
