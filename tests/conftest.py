import os
import shutil

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    no_cuda = pytest.mark.skip(reason="needs CUDA")
    no_browser = pytest.mark.skip(reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    have_browser = shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "browser" in item.keywords and not have_browser:
            item.add_marker(no_browser)
