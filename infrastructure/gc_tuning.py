"""The garbage collector of a long-running Waymark process (API, workers).

CPython's cyclic collector runs a young collection every 700 net allocations and, now and
then, a full one that walks every tracked object: the imported modules, the FastAPI and
pydantic schemas, the instance cache. Measured in the 3-step bench (in process, 2026-12-02)
that was about 9 % of the process's CPU, with full collections of up to 100 ms — a pause
every request in flight waits out. Once the process is built, `settle` collects what start-up
left as garbage, moves everything that survived into the permanent generation
(`gc.freeze()`: never scanned again, since it lives as long as the process), and raises the
young generation's threshold (`WAYMARK_GC_GEN0_THRESHOLD`; 0 keeps CPython's). Reference
counting still frees most objects at once; the collector only finds cycles, and later.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def settle(gen0_threshold: int) -> None:
    """Freeze the start-up heap; young collections every `gen0_threshold` allocations."""
    gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        _gen0, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
    logger.debug(
        "gc: %d start-up objects frozen; thresholds %s", gc.get_freeze_count(), gc.get_threshold()
    )
