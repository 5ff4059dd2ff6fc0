"""Expected FSC curves by a route independent of :mod:`pytest_cryobench.kernels.fsc`.

Plain NumPy, float64, the full ``fftn`` grid (no half grid, no Hermitian weights, no sparse shell
matrix, no shared helper): each Fourier element's shell is the nearest integer to its radius in
pixel units, shells ``0 .. n // 2`` are kept and the corners dropped; the FSC of shell ``i`` is
``sum Re(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2)`` over that shell's elements. This is the
definition the kernel documents; the kernel computes it another way (rfft half grid, weights,
a cached shell matrix), so a binning, weighting or reduction error in the kernel shows up as a
difference from these curves. Used only to state known answers of the checks (see
``docs/design.md``, checks).
"""

from __future__ import annotations

import numpy as np


def shell_of_each_element(n: int) -> np.ndarray:
    """Shell of every element of the full ``n^3`` FFT grid, int64, shape (n, n, n).

    ``round(sqrt(kz^2 + ky^2 + kx^2))`` with ``k`` the signed integer frequency of each axis
    (``0, 1, .., -1``); ``n // 2 + 1`` for the corners beyond the last kept shell.
    """
    k = np.concatenate([np.arange(0, (n + 1) // 2), np.arange(-(n // 2), 0)]).astype(np.float64)
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    shells = np.floor(np.sqrt(kz * kz + ky * ky + kx * kx) + 0.5).astype(np.int64)
    return np.minimum(shells, n // 2 + 1)


def _per_shell(values: np.ndarray, shells: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(shells.ravel(), weights=values.ravel(), minlength=n // 2 + 2)[: n // 2 + 1]


def reference_fsc(v1: np.ndarray, v2: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """FSC of two real ``n^3`` maps (each times ``mask`` first), float64, shape (n // 2 + 1,)."""
    a = np.asarray(v1, dtype=np.float64)
    b = np.asarray(v2, dtype=np.float64)
    if mask is not None:
        m = np.asarray(mask, dtype=np.float64)
        a, b = a * m, b * m
    n = a.shape[0]
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    shells = shell_of_each_element(n)
    cross = _per_shell((fa * np.conj(fb)).real, shells, n)
    pa = _per_shell(np.abs(fa) ** 2, shells, n)
    pb = _per_shell(np.abs(fb) ** 2, shells, n)
    denom = np.sqrt(pa * pb)
    return np.where(denom > 0, cross / np.where(denom > 0, denom, 1.0), 0.0)


def reference_shell_power(volume: np.ndarray) -> np.ndarray:
    """Total ``|F|^2`` per shell of a real map (unnormalised ``fftn``), float64, (n // 2 + 1,)."""
    f = np.fft.fftn(np.asarray(volume, dtype=np.float64))
    n = f.shape[0]
    return _per_shell(np.abs(f) ** 2, shell_of_each_element(n), n)


def reference_shell_counts(n: int) -> np.ndarray:
    """Elements per shell of the full ``n^3`` grid, float64, shape (n // 2 + 1,)."""
    return _per_shell(np.ones((n, n, n)), shell_of_each_element(n), n)


def expected_masked_fsc(signal: np.ndarray, mask: np.ndarray | None, noise_sigma: float) -> np.ndarray:
    """Expected FSC of ``(S + N_a) m`` against ``(S + N_b) m`` for white noise of sigma ``noise_sigma``.

    White noise times a mask is still white, with ``E|F[N m](k)|^2 = sigma^2 sum(m^2)`` for every
    ``k`` (unnormalised transform), and the two noises are independent, so per shell the expected
    FSC is ``P_{Sm} / (P_{Sm} + sigma^2 sum(m^2))`` with ``P_{Sm}`` the mean ``|F[S m]|^2`` of the
    shell.

    Parameters
    ----------
    signal : numpy.ndarray, shape (n, n, n)
        The clean signal.
    mask : numpy.ndarray, shape (n, n, n), or None
        The mask applied to both halves (``None``: no mask).
    noise_sigma : float
        Standard deviation of each half's noise.

    Returns
    -------
    numpy.ndarray of float64, shape (n // 2 + 1,)
    """
    s = np.asarray(signal, dtype=np.float64)
    m = np.ones_like(s) if mask is None else np.asarray(mask, dtype=np.float64)
    counts = reference_shell_counts(s.shape[0])
    power = reference_shell_power(s * m) / counts
    noise = noise_sigma**2 * float(np.sum(m * m))
    return power / (power + noise)


def noise_substitution_expectations(signal: np.ndarray, mask: np.ndarray, noise_sigma: float,
                                    shell: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected ``FSC_n`` and ``FSC_true`` of noise substitution randomised from ``shell`` on.

    Split the designed signal at ``shell``: ``S_lo`` (shells ``< shell``) and ``S_hi`` (the rest).
    Randomising the phases of shells ``>= shell`` keeps each half's power per shell and leaves only
    ``S_lo`` common to both halves; under the mask that common part spreads into higher shells
    (the mask-induced correlation noise substitution measures), while the randomised ``S_hi``, no
    longer inside the mask, keeps ``sum(m^2) / n^3`` of its power, as white noise does. So per shell

    - ``E[FSC_n] ~ P_{S_lo m} / (P_{S_lo m} + P_{S_hi} sum(m^2) / n^3 + sigma^2 sum(m^2))``, large just
      beyond ``shell`` and decaying to 0 within the width of the mask's transform;
    - the corrected curve expected from the design is the correction applied to the two expected
      curves, ``(E[FSC_t] - E[FSC_n]) / (1 - E[FSC_n])`` from ``shell + 2`` on (``E[FSC_t]`` below),
      with ``E[FSC_t]`` of :func:`expected_masked_fsc`: what remains of the masked FSC once the
      mask-induced correlation of the low-resolution signal is taken out.

    Parameters
    ----------
    signal, mask : numpy.ndarray, shape (n, n, n)
        The designed clean signal and the tight mask the run used.
    noise_sigma : float
        Each half's white-noise standard deviation.
    shell : int
        The randomisation shell.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(fsc_n, fsc_true)`` expected, float64, shape (n // 2 + 1,) each.
    """
    s = np.asarray(signal, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    n = s.shape[0]
    f = np.fft.fftn(s)
    f[shell_of_each_element(n) >= shell] = 0
    low = np.fft.ifftn(f).real
    high = s - low
    counts = reference_shell_counts(n)
    kept = float(np.sum(m * m))
    common = reference_shell_power(low * m) / counts
    spread = (reference_shell_power(high) / counts) * kept / n**3
    fsc_n = common / (common + spread + noise_sigma**2 * kept)
    fsc_t = expected_masked_fsc(s, mask, noise_sigma)
    fsc_true = fsc_t.copy()
    beyond = np.arange(fsc_t.size) >= shell + 2
    fsc_true[beyond] = (fsc_t[beyond] - fsc_n[beyond]) / (1.0 - fsc_n[beyond])
    return fsc_n, fsc_true
