import os

# Tests run side by side on 2 cores: keep each process to one intra-op thread so that
# timings stay stable and parallel runs do not thrash.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
