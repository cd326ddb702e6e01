"""Reference features for tests/signal/test_spectral.c, in float64 with
SciPy/NumPy (no librosa in Debian 12: its mel filterbank and dB formulas are
re-implemented here from librosa's definitions).

usage: spectral_ref.py OUTDIR NAME SOURCE rate n_fft hop win_length window pad
                       power n_mels fmin fmax mel_scale mel_norm log amin
                       top_db eps n_mfcc
SOURCE is a WAV file (read with scipy.io.wavfile, first 24000 samples) or
noise:SEED:COUNT (standard normal). Writes OUTDIR/NAME.x.f32 (the samples the
C side reads) and NAME.{stft,mel,logmel,mfcc,stats}.f64. Exit 77: no SciPy."""
import sys

try:
    import numpy as np
    import scipy.fft
    import scipy.io.wavfile
    import scipy.signal
    import scipy.stats
except ImportError:
    sys.exit(77)


def hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, min_log_mel + np.log(np.maximum(f, 1e-300) / 1000.0) / logstep, f / f_sp)


def mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, 1000.0 * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(rate, n_fft, n_mels, fmin, fmax, htk, slaney_norm):
    """librosa.filters.mel, in float64."""
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(pts)
    ramps = np.subtract.outer(pts, fftfreqs)
    w = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        w[i] = np.maximum(0, np.minimum(lower, upper))
    if slaney_norm:
        w *= (2.0 / (pts[2:n_mels + 2] - pts[:n_mels]))[:, None]
    return w


def main():
    out, name, source = sys.argv[1:4]
    a = sys.argv[4:]
    rate, n_fft, hop, win_length = float(a[0]), int(a[1]), int(a[2]), int(a[3])
    window, pad, power, n_mels = a[4], a[5], int(a[6]), int(a[7])
    fmin, fmax, mel_scale, mel_norm, log = float(a[8]), float(a[9]), a[10], a[11], a[12]
    amin, top_db, eps, n_mfcc = float(a[13]), float(a[14]), float(a[15]), int(a[16])

    if source.startswith("noise:"):
        _, seed, count = source.split(":")
        x = np.random.default_rng(int(seed)).standard_normal(int(count)).astype(np.float32)
    else:
        r, x = scipy.io.wavfile.read(source)
        assert r == int(rate), (r, rate)
        x = np.ascontiguousarray(x[:24000], dtype=np.float32)
    x.tofile(f"{out}/{name}.x.f32")
    xd = x.astype(np.float64)

    # the window: scipy's periodic Hann (fftbins=True), centred in n_fft
    w = scipy.signal.get_window("hann" if window == "hann" else "boxcar", win_length)
    lpad = (n_fft - win_length) // 2
    w = np.pad(w, (lpad, n_fft - win_length - lpad))

    if pad == "reflect":
        xp, boundary = np.pad(xd, n_fft // 2, mode="reflect"), None
    elif pad == "zeros":
        xp, boundary = xd, "zeros"
    else:
        xp, boundary = xd, None
    # scipy.signal.stft scales by 1 / sum(window) ('spectrum'): undone here
    _, _, z = scipy.signal.stft(xp, fs=rate, window=w, nperseg=n_fft, noverlap=n_fft - hop, nfft=n_fft,
                                detrend=False, return_onesided=True, boundary=boundary, padded=False)
    spec = np.abs(z.T * w.sum()) ** power
    spec.tofile(f"{out}/{name}.stft.f64")

    fb = mel_filters(rate, n_fft, n_mels, fmin, fmax, mel_scale == "htk", mel_norm == "slaney")
    fb.tofile(f"{out}/{name}.mel.f64")
    mel = spec @ fb.T
    if log == "db":  # librosa.power_to_db(ref=1.0)
        lm = 10.0 * np.log10(np.maximum(amin, mel))
        if top_db > 0:
            lm = np.maximum(lm, lm.max() - top_db)
    else:
        lm = np.log(mel + eps)
    lm.tofile(f"{out}/{name}.logmel.f64")
    scipy.fft.dct(lm, type=2, norm="ortho", axis=1)[:, :n_mfcc].copy().tofile(f"{out}/{name}.mfcc.f64")

    # time statistics on the unwindowed frames of the same framing
    xs = np.pad(xd, n_fft // 2, mode="reflect" if pad == "reflect" else "constant") if pad != "none" else xd
    fr = np.lib.stride_tricks.sliding_window_view(xs, n_fft)[::hop][:spec.shape[0]]
    rms = np.sqrt(np.mean(fr * fr, axis=1))
    peak = np.max(np.abs(fr), axis=1)
    with np.errstate(all="ignore"):
        crest = np.where(rms > 0, peak / rms, 0.0)
        kurt = scipy.stats.kurtosis(fr, axis=1, fisher=True, bias=True)
    kurt = np.where(np.ptp(fr, axis=1) == 0, 0.0, kurt)  # constant frames: 0 by the C API's definition
    np.stack([fr.mean(axis=1), rms, peak, crest, kurt], axis=1).tofile(f"{out}/{name}.stats.f64")


main()
