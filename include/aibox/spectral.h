/* Spectral and time-domain features of a signal (included by aibox.h).
 *
 * A caller-owned aibox_spectral object, made from aibox_spectral_opts, holds
 * the FFT plan (kissfft's real FFT, single precision), the window, the mel
 * filterbank and the DCT table, computed once. Every feature function frames
 * the signal the same way:
 *
 *   framing   frames of n_fft samples every hop samples. With centre padding
 *             (AIBOX_PAD_REFLECT as librosa's default, AIBOX_PAD_ZEROS as
 *             scipy.signal.stft's boundary='zeros') the signal is first
 *             extended by n_fft/2 samples on both sides, so frame t is centred
 *             on sample t*hop; AIBOX_PAD_NONE starts the first frame at sample
 *             0. Frames that would run past the (padded) end are not made
 *             (scipy's padded=False): aibox_spectral_frames says how many.
 *   window    AIBOX_WINDOW_HANN is the periodic Hann window of win_length
 *             samples, 0.5 - 0.5 cos(2 pi i / win_length), i.e.
 *             scipy.signal.get_window('hann', win_length) (fftbins=True);
 *             a win_length below n_fft is centred in the frame with zeros on
 *             both sides (librosa's pad_center). AIBOX_WINDOW_RECT: ones.
 *   STFT      |rfft(window * frame)|^power, n_frames x (n_fft/2 + 1), not
 *             scaled (scipy.signal.stft's values times sum(window)).
 *   mel       the filterbank of librosa.filters.mel computed in double:
 *             n_mels triangles between n_mels + 2 points equally spaced on
 *             the mel scale from fmin to fmax (AIBOX_MEL_SLANEY: linear below
 *             1 kHz, logarithmic above, as librosa's default htk=False;
 *             AIBOX_MEL_HTK: 2595 log10(1 + f/700)), each triangle scaled to
 *             unit area (2 / (f[i+2] - f[i])) when mel_norm is
 *             AIBOX_MELNORM_SLANEY (librosa's norm='slaney').
 *   log       AIBOX_LOG_DB: 10 log10(max(mel, amin)), then (top_db > 0)
 *             clamped from below at the call's maximum minus top_db -- as
 *             librosa.power_to_db(ref=1.0), whose top_db spans the whole
 *             matrix, so the clamp depends on which frames one call sees.
 *             AIBOX_LOG_LN: ln(mel + eps).
 *   MFCC      the orthonormal DCT-II of each frame's log-mel
 *             (scipy.fft.dct(type=2, norm='ortho')), its first n_mfcc values.
 *   stats     per frame of n_fft raw samples (same framing, no window):
 *             mean, RMS, peak |x|, crest = peak / RMS, kurtosis in Fisher's
 *             (excess) definition with biased moments, m4 / m2^2 - 3, as
 *             scipy.stats.kurtosis's defaults. A constant frame (m2 = 0,
 *             where SciPy says NaN) has kurtosis 0; a zero frame crest 0.
 *
 * Features come out as floats, row-major, one row per frame; they are
 * accumulated in double from the single-precision FFT. The object keeps
 * scratch buffers (the log-mel one grows to the longest signal a call has
 * seen and is kept): use one object per thread. The settings are stored in
 * a model's metadata (aibox.signal.*) like an image model's preprocessing. */
#ifndef AIBOX_SPECTRAL_PUBLIC_H
#define AIBOX_SPECTRAL_PUBLIC_H

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aibox_window { AIBOX_WINDOW_HANN = 0, AIBOX_WINDOW_RECT = 1 } aibox_window;
typedef enum aibox_pad { AIBOX_PAD_REFLECT = 0, AIBOX_PAD_ZEROS = 1, AIBOX_PAD_NONE = 2 } aibox_pad;
typedef enum aibox_mel_scale { AIBOX_MEL_SLANEY = 0, AIBOX_MEL_HTK = 1 } aibox_mel_scale;
typedef enum aibox_mel_norm { AIBOX_MELNORM_SLANEY = 0, AIBOX_MELNORM_NONE = 1 } aibox_mel_norm;
typedef enum aibox_log_kind { AIBOX_LOG_DB = 0, AIBOX_LOG_LN = 1 } aibox_log_kind;

typedef struct aibox_spectral_opts {
    double rate;         /* samples per second (> 0) */
    int n_fft;           /* frame length and FFT size: even, 2 .. 65536 */
    int hop;             /* samples between frame starts (>= 1) */
    int win_length;      /* window length, 1 .. n_fft (0: n_fft) */
    aibox_window window;
    aibox_pad pad;       /* centre padding, or none */
    int power;           /* 1: magnitude, 2: power (the STFT and what the mel filters sum) */
    int n_mels;          /* 1 .. 1024 */
    double fmin, fmax;   /* mel band in Hz: 0 <= fmin < fmax <= rate / 2 (fmax 0: rate / 2) */
    aibox_mel_scale mel_scale;
    aibox_mel_norm mel_norm;
    aibox_log_kind log;
    double amin;         /* AIBOX_LOG_DB: floor before the log (> 0) */
    double top_db;       /* AIBOX_LOG_DB: dynamic range kept below the maximum (0: all) */
    double eps;          /* AIBOX_LOG_LN: added before the log (> 0) */
    int n_mfcc;          /* 1 .. n_mels */
} aibox_spectral_opts;

/* librosa's defaults at a rate: n_fft 2048, hop 512, win_length n_fft, Hann,
 * reflect centre padding, power 2, 128 Slaney mels (Slaney norm) over
 * 0 .. rate/2, dB with amin 1e-10 and top_db 80, 20 MFCCs. */
AIBOX_API void aibox_spectral_opts_default(aibox_spectral_opts *o, double rate);
/* AIBOX_E_INVALID (with what is wrong) unless the settings are usable. */
AIBOX_API aibox_status aibox_spectral_opts_check(const aibox_spectral_opts *o, aibox_error *err);

typedef struct aibox_spectral aibox_spectral;
AIBOX_API aibox_status aibox_spectral_create(aibox_spectral **sp, const aibox_spectral_opts *o, aibox_error *err);
AIBOX_API void aibox_spectral_free(aibox_spectral **sp); /* sets *sp to NULL */
/* The settings it was made with (fmax and win_length resolved). */
AIBOX_API const aibox_spectral_opts *aibox_spectral_get_opts(const aibox_spectral *sp);

/* Frames a signal of n samples gives (0 when shorter than one frame, or empty). */
AIBOX_API size_t aibox_spectral_frames(const aibox_spectral *sp, size_t n);
/* STFT columns: n_fft / 2 + 1. */
AIBOX_API int aibox_spectral_bins(const aibox_spectral *sp);
/* The mel filterbank, n_mels x bins doubles (owned by sp). */
AIBOX_API const double *aibox_spectral_mel_filters(const aibox_spectral *sp);

/* Each fills out with aibox_spectral_frames(sp, n) rows; a signal shorter
 * than one frame is AIBOX_E_SHAPE, a non-finite sample AIBOX_E_NONFINITE. */
AIBOX_API aibox_status aibox_spectral_stft(aibox_spectral *sp, const float *x, size_t n, float *out,
                                           aibox_error *err); /* rows of bins */
AIBOX_API aibox_status aibox_spectral_logmel(aibox_spectral *sp, const float *x, size_t n, float *out,
                                             aibox_error *err); /* rows of n_mels */
AIBOX_API aibox_status aibox_spectral_mfcc(aibox_spectral *sp, const float *x, size_t n, float *out,
                                           aibox_error *err); /* rows of n_mfcc */

/* Time-domain statistics per frame: rows of AIBOX_STAT_COUNT, in this order. */
enum { AIBOX_STAT_MEAN = 0, AIBOX_STAT_RMS, AIBOX_STAT_PEAK, AIBOX_STAT_CREST, AIBOX_STAT_KURTOSIS, AIBOX_STAT_COUNT };
AIBOX_API aibox_status aibox_spectral_stats(const aibox_spectral *sp, const float *x, size_t n, float *out,
                                            aibox_error *err);

/* Names for the enums (as stored in a model: "hann", "rect"; "reflect",
 * "zeros", "none"; "slaney", "htk"; "slaney", "none"; "db", "ln"). */
AIBOX_API const char *aibox_window_name(aibox_window w);
AIBOX_API const char *aibox_pad_name(aibox_pad p);
AIBOX_API const char *aibox_mel_scale_name(aibox_mel_scale s);
AIBOX_API const char *aibox_mel_norm_name(aibox_mel_norm n);
AIBOX_API const char *aibox_log_kind_name(aibox_log_kind k);

/* The settings as model metadata: aibox.signal.rate, .n_fft, .hop,
 * .win_length, .window, .pad, .power, .n_mels, .fmin, .fmax, .mel_scale,
 * .mel_norm, .log, .amin, .top_db, .eps, .n_mfcc. _to_model checks them
 * first. _from_model: AIBOX_E_NOTFOUND when the model has no
 * aibox.signal.rate (not a signal model); other absent keys take
 * aibox_spectral_opts_default's values; unknown names or unusable
 * settings are AIBOX_E_FORMAT. */
AIBOX_API aibox_status aibox_spectral_opts_to_model(const aibox_spectral_opts *o, aibox_model *m, aibox_error *err);
AIBOX_API aibox_status aibox_spectral_opts_from_model(aibox_spectral_opts *o, const aibox_model *m, aibox_error *err);

#ifdef __cplusplus
}
#endif

#define AIBOX_SPECTRAL_DECLARED /* sound.h waits for this (see there) */
/* sound.h builds on this header: when this header was read first, aibox.h
 * reached sound.h too early and skipped it; now it can be read. */
#include "sound.h"

#endif
