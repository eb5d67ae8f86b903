"""Run a command subject to file permissions even as root (for "unwritable folder" tests)."""

import os
import shutil


def without_root_override(argv: list[str]) -> list[str]:
    """Root ignores file modes; dropping CAP_DAC_OVERRIDE from the bounding set makes it obey them."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root needs util-linux's setpriv to test file permissions")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *argv]
