"""Headless Chromium for the end-to-end tests: Debian's `chromium` driven by its own `chromedriver`
(same build, so versions always match; nothing is downloaded by a browser tool).

`make test` installs both (`make browser`); when they are missing and this process is root, the
session fixture installs them itself. Where they cannot be installed, the browser tests skip and say
why; nothing else is skipped. Screenshots go to tests/artifacts/ (ignored by git).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--disable-extensions", "--hide-scrollbars")
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def _apt_install() -> str:
    """Install chromium + chromium-driver with apt-get; returns the error text ('' on success)."""
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"]
    result = subprocess.run(cmd, env=APT_ENV, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:  # a stale package list: refresh once and retry
        subprocess.run(["apt-get", "update", "-qq"], env=APT_ENV, capture_output=True, timeout=600)
        result = subprocess.run(cmd, env=APT_ENV, capture_output=True, text=True, timeout=1200)
    return "" if result.returncode == 0 else (result.stderr or result.stdout)[-400:]


def browser_missing_reason() -> str | None:
    """None when chromium and chromedriver are there (installing them if we can), else why not."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if os.geteuid() != 0:
        return (f"{CHROMIUM} / {CHROMEDRIVER} missing and not root, so `apt-get install chromium "
                "chromium-driver` cannot run here (run `make browser` as root)")
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} / {CHROMEDRIVER} missing and there is no apt-get to install them"
    error = _apt_install()
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    return f"apt-get could not install chromium chromium-driver: {error.strip()}"


@pytest.fixture(scope="session")
def browser_available():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install -r requirements-dev.txt")
    reason = browser_missing_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def browser(browser_available):
    """A fresh headless Chromium (empty profile) per test, with downloads going to `browser.download_dir`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="pdm-chromium-"))
    downloads = profile / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile / 'profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.download_dir = downloads
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG under tests/artifacts/ (the whole page height by default)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = driver.get_window_size()
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(max(height, size["height"]), 8000))
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
    return path
