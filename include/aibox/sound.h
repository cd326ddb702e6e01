/*
 * libaibox — models on sound and vibration: windows of a recording as a
 * model's input, datasets of recordings, the good-only Gaussian detector, and
 * the listener that judges a recording or an endless stream window by window.
 *
 * Self-contained: it includes aibox.h itself; aibox.h includes this file at
 * its END. The conventions of aibox.h hold (statuses, aibox_error, no exit).
 *
 * A signal model is an ordinary .aibox model whose metadata carries the
 * window settings (aibox.sound.*) beside the feature settings
 * (aibox.signal.*, aibox_spectral_opts_to_model). Three inputs:
 *
 *   AIBOX_SOUND_LOGMEL    1 x n_mels x F: the window's log-mel spectrogram,
 *                         F = aibox_spectral_frames(window), mels as rows and
 *                         frames as columns (a 2-D CNN).
 *   AIBOX_SOUND_RAW       1 x 1 x window: the samples (a 1-D CNN: kernels 1 x k).
 *   AIBOX_SOUND_FEATURES  (2 n_mels + 4) x 1 x 1: the mean over the window's
 *                         frames of each log-mel band, then each band's
 *                         standard deviation over them (population, 1/F),
 *                         then the mean of the per-frame RMS, peak, crest and
 *                         kurtosis (aibox_spectral_stats) — the good-only
 *                         detector's vector. (The standard deviations carry
 *                         the transients: on MIMII they lift the mean AUROC
 *                         from 0.47 to 0.60 and halve CWRU's false alarms,
 *                         bench/signal_outlier --feat meanstd.)
 *
 * Every input is then standardised, (x - in_mean) / in_std, with the two
 * scalars the training data gave (stored in the model). With norm
 * AIBOX_SOUND_NORM_RMS a window is first divided by its own RMS (a silent
 * window stays as it is), so the loudness of a machine or the gain of a
 * sensor does not decide its class.
 *
 * Windows: window samples every hop samples from the recording's first
 * sample; a recording shorter than one window gives none; the tail that does
 * not fill a window is not judged (a stream that ends inside a window says
 * how many samples it dropped).
 */
/* Declared only once every header it builds on is complete: a file that
 * includes one of them first has aibox.h (which each includes) reach this
 * header while that one is still half read; it is skipped there, and each of
 * them includes it again at its end — the last one to finish declares it.
 * The marks: AIBOX_SPLIT_COUNT (data.h), AIBOX_SIGNAL_MAX_FRAMES (signal.h),
 * AIBOX_SPECTRAL_DECLARED (spectral.h), AIBOX_META_ANOMALY_BACKBONE
 * (anomaly.h), each defined after the types this header uses. */
#include "../aibox.h"
#include "anomaly.h"
#include "data.h"
#include "signal.h"
#include "spectral.h"
#if !defined(AIBOX_SOUND_H) && defined(AIBOX_SPLIT_COUNT) && defined(AIBOX_SIGNAL_MAX_FRAMES) && \
    defined(AIBOX_SPECTRAL_DECLARED) && defined(AIBOX_META_ANOMALY_BACKBONE)
#define AIBOX_SOUND_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aibox_sound_input {
    AIBOX_SOUND_LOGMEL = 0,
    AIBOX_SOUND_RAW = 1,
    AIBOX_SOUND_FEATURES = 2
} aibox_sound_input;

typedef enum aibox_sound_norm { AIBOX_SOUND_NORM_NONE = 0, AIBOX_SOUND_NORM_RMS = 1 } aibox_sound_norm;

typedef struct aibox_sound_opts {
    aibox_spectral_opts spec; /* rate and the frames inside a window (pad: AIBOX_PAD_NONE by default) */
    long window;              /* samples per window (>= spec.n_fft for LOGMEL/FEATURES; 16 .. 2^22) */
    long hop;                 /* samples between the starts of two windows (1 .. 2^22) */
    aibox_sound_input input;
    aibox_sound_norm norm;
    float in_mean, in_std;    /* standardisation of the input (in_std > 0; 0 and 1: none) */
} aibox_sound_opts;

/* Defaults at a rate for an input kind: windows of about 0.5 s (the power
 * of two nearest rate / 2; hop half a window), n_fft 512 (1024 from 32 kHz),
 * hop n_fft / 2, 64 mels (LOGMEL, FEATURES), log in dB without top_db, no
 * centre padding, n_mfcc 1 (unused; valid for any n_mels), norm NONE (RAW:
 * RMS), in_mean 0, in_std 1; the rest aibox_spectral_opts_default's. Below
 * about 2 kHz the window (nearest power of two to rate / 2, at least 16)
 * may be shorter than 512: n_fft is then the window. */
AIBOX_API void aibox_sound_opts_default(aibox_sound_opts *o, double rate, aibox_sound_input input);
AIBOX_API aibox_status aibox_sound_opts_check(const aibox_sound_opts *o, aibox_error *err);
/* The model input a window gives: c x h x w as in the table above. */
AIBOX_API aibox_status aibox_sound_input_shape(const aibox_sound_opts *o, int *c, int *h, int *w, aibox_error *err);
/* Windows in a recording of n samples. */
AIBOX_API long aibox_sound_window_count(const aibox_sound_opts *o, long n);
/* Names as stored: "logmel", "raw", "features"; "none", "rms". */
AIBOX_API const char *aibox_sound_input_name(aibox_sound_input k);
AIBOX_API const char *aibox_sound_norm_name(aibox_sound_norm k);

/* Metadata keys aibox.sound.window, .hop, .input, .norm, .in_mean, .in_std
 * plus aibox_spectral_opts_to_model's aibox.signal.*; _from_model:
 * AIBOX_E_NOTFOUND when the model has no aibox.sound.input (not a signal
 * model), AIBOX_E_FORMAT for unusable values. */
AIBOX_API aibox_status aibox_sound_opts_to_model(const aibox_sound_opts *o, aibox_model *m, aibox_error *err);
AIBOX_API aibox_status aibox_sound_opts_from_model(aibox_sound_opts *o, const aibox_model *m, aibox_error *err);
/* 1 when the model carries aibox.sound.input (a signal model). */
AIBOX_API int aibox_model_is_sound(const aibox_model *m);

/* ------------------------------------------------------------------ front end */
/* Turns one window of mono samples into the model's input. Holds its
 * spectral object and scratch: one per thread. */
typedef struct aibox_sound_frontend aibox_sound_frontend;
AIBOX_API aibox_status aibox_sound_frontend_create(aibox_sound_frontend **fe, const aibox_sound_opts *o,
                                                   aibox_error *err);
AIBOX_API void aibox_sound_frontend_free(aibox_sound_frontend **fe);
AIBOX_API const aibox_sound_opts *aibox_sound_frontend_opts(const aibox_sound_frontend *fe);
/* Floats one window gives (c * h * w). */
AIBOX_API size_t aibox_sound_frontend_size(const aibox_sound_frontend *fe);
/* x: o->window samples; out: aibox_sound_frontend_size floats. A non-finite
 * sample is AIBOX_E_NONFINITE. raw (may be NULL) receives the input before
 * standardisation (in_mean/in_std not applied) — what a fit computes the two
 * scalars from. */
AIBOX_API aibox_status aibox_sound_frontend_run(aibox_sound_frontend *fe, const float *x, float *out, float *raw,
                                                aibox_error *err);

/* ------------------------------------------------------------------ datasets */
/* A folder of recordings: DIR/<class>/<file> (a seeded split by recording:
 * val_split of each class's recordings, at least one when the class has two
 * or more, go to validation) or DIR/train/<class>, DIR/val/<class> (and
 * DIR/test/<class>) as laid out. Every recording is read (aibox_signal_load;
 * channel as given; resampled to o.spec.rate when its rate differs), cut into
 * windows and turned into model inputs once, in memory. A recording is in one
 * split only: all its windows go with it. in_mean / in_std are computed over
 * the training windows (mean and standard deviation of every input value)
 * and used for every split. Unreadable or too-short recordings are skipped
 * with their reason (strict: the first one fails the open). Sorted, so the
 * same folder and seed give the same split.
 *
 * In detail: the flat layout's validation share of a class of n usable
 * recordings is round(val_split * n), at least 1 when n >= 2 and val_split
 * > 0, at most n - 1, drawn by a permutation seeded from (seed, class name)
 * over them in name order. With DIR/train but no DIR/val, validation is
 * drawn from train/ the same way. Every regular file directly in a class
 * folder is tried (names starting with '.' are not listed): a file
 * libsndfile cannot read ("not a sound file ..."), a truncated one, one with
 * several channels under AIBOX_CHANNEL_ALL, one shorter than a window ("too
 * short"), and a sub-folder or special file, all go to the skip list in
 * class/name order. A class folder without a usable recording is not a
 * class; fewer than 2 classes, or no training window, is AIBOX_E_INVALID; a
 * missing DIR AIBOX_E_NOTFOUND. Windows are computed on `threads` threads,
 * one recording per task: the same bits for any count. Memory: every
 * window's input as floats (briefly twice while the splits are assembled). */
typedef struct aibox_sound_data_opts {
    aibox_sound_opts sound; /* in_mean / in_std are computed; the rest is used as given */
    double val_split;       /* 0 .. 0.9 (DIR/<class> layout) */
    uint64_t seed;
    int channel;            /* as aibox_signal_opts.channel; AIBOX_CHANNEL_MIX mixes to mono */
    int strict;
    long max_frames;        /* per recording; 0: AIBOX_SIGNAL_MAX_FRAMES */
    int threads;            /* feature computation; 0: the default */
} aibox_sound_data_opts;
/* aibox_sound_opts_default's windows, val_split 0.2, seed 0, channel
 * AIBOX_CHANNEL_MIX (a mono file mixes to itself), not strict, max_frames
 * and threads 0 (the defaults). */
AIBOX_API void aibox_sound_data_opts_default(aibox_sound_data_opts *o, double rate, aibox_sound_input input);

typedef struct aibox_sound_dataset aibox_sound_dataset;
AIBOX_API aibox_status aibox_sound_dataset_open(aibox_sound_dataset **ds, const char *dir,
                                                const aibox_sound_data_opts *o, aibox_error *err);
AIBOX_API void aibox_sound_dataset_free(aibox_sound_dataset **ds);
/* The settings with in_mean / in_std filled in (store them in the model). */
AIBOX_API const aibox_sound_opts *aibox_sound_dataset_opts(const aibox_sound_dataset *ds);
AIBOX_API int aibox_sound_dataset_class_count(const aibox_sound_dataset *ds);
AIBOX_API const char *aibox_sound_dataset_class_name(const aibox_sound_dataset *ds, int c);
AIBOX_API const char *const *aibox_sound_dataset_class_names(const aibox_sound_dataset *ds);
AIBOX_API int aibox_sound_dataset_recordings(const aibox_sound_dataset *ds, aibox_split split);
AIBOX_API const char *aibox_sound_dataset_recording_path(const aibox_sound_dataset *ds, aibox_split split, int i);
AIBOX_API int aibox_sound_dataset_recording_label(const aibox_sound_dataset *ds, aibox_split split, int i);
/* The recording's windows: [*first, *first + *count) of the split's windows. */
AIBOX_API void aibox_sound_dataset_recording_windows(const aibox_sound_dataset *ds, aibox_split split, int i,
                                                     long *first, long *count);
AIBOX_API long aibox_sound_dataset_windows(const aibox_sound_dataset *ds, aibox_split split);
/* Window j's standardised input (aibox_sound_frontend_size floats) and label. */
AIBOX_API const float *aibox_sound_dataset_window(const aibox_sound_dataset *ds, aibox_split split, long j,
                                                  int *label);
AIBOX_API int aibox_sound_dataset_skipped_count(const aibox_sound_dataset *ds);
AIBOX_API aibox_status aibox_sound_dataset_skipped(const aibox_sound_dataset *ds, int i, const char **path,
                                                   const char **reason);
/* Batches of a split's windows for aibox_train: shuffled per epoch from seed
 * (shuffle 0: in order, for validation); its describe() stores the sound
 * settings and class names in the model. The source borrows ds. Each batch
 * is a contiguous copy of its windows, borrowed until the next call; the
 * order of epoch e depends only on (seed, e). NB aibox_train runs
 * validation in its training context: a validation source's batch must not
 * exceed train_batch. */
typedef struct aibox_sound_batches aibox_sound_batches;
AIBOX_API aibox_status aibox_sound_batches_create(aibox_sound_batches **b, const aibox_sound_dataset *ds,
                                                  aibox_split split, int batch, int shuffle, uint64_t seed,
                                                  aibox_error *err);
AIBOX_API aibox_batch_source aibox_sound_batches_source(aibox_sound_batches *b);
AIBOX_API void aibox_sound_batches_free(aibox_sound_batches **b);

/* Networks for windows, finished and initialised from seed, ending in one
 * logit per class: "cnn2d" (LOGMEL: four 3x3 conv-BN-ReLU-max-pool stages
 * of 16, 32, 64, 64 channels, global average pool, dropout, dense) and
 * "cnn1d" (RAW: a wide first convolution 1 x 64 stride 8, then 1 x 3
 * conv-BN-ReLU-max-pool stages, global average pool, dropout, dense; as
 * WDCNN for bearing faults). A max-pool is 2 x 2 (cnn2d) or 1 x 2 (cnn1d),
 * 1 in a direction already down to 1, so short windows still build. About
 * 61k (cnn2d) and 34k (cnn1d) parameters. The model's metadata holds o
 * (aibox_sound_opts_to_model) and AIBOX_META_ARCH "sound_cnn2d" /
 * "sound_cnn1d". Errors: an unknown name, the wrong input kind (cnn2d takes
 * LOGMEL, cnn1d RAW) or classes < 2: AIBOX_E_INVALID; a log-mel smaller
 * than 8 mels x 4 frames or a raw window under 256 samples: AIBOX_E_SHAPE. */
AIBOX_API aibox_status aibox_sound_preset(aibox_model **m, const char *name, const aibox_sound_opts *o,
                                          int classes, float dropout, uint64_t seed, aibox_error *err);

/* ------------------------------------------------------------------ good-only detector */
/* A Gaussian over FEATURES windows of normal operation: standardise with the
 * fit windows' per-dimension mean and standard deviation, covariance in
 * double with reg * trace / d added to its diagonal, and the whitening
 * W = L^-1 of its Cholesky factor L. Stored as a model whose graph is one
 * dense layer (input d x 1 x 1 -> d outputs, weights and bias folding the
 * standardisation and the whitening), so a window's score, the Mahalanobis
 * distance, is the Euclidean norm of the model's output. The threshold is
 * set by the image anomaly models' rules (aibox_thresholds_compute) from the
 * scores of held-out normal windows only (the last held_out fraction of
 * each fit recording's windows, rounded, at least one of a recording's two or
 * more windows, never all), and stored with them (aibox_thresholds_to_model);
 * the method is named as the image anomaly models name theirs:
 * AIBOX_META_TASK ("aibox.task") is "gaussian". The stored sound settings are
 * sound's with in_mean 0 and in_std 1 (the dense layer standardises per
 * feature). The held-out scores are computed as the listener computes them,
 * so under the rule "max" no held-out window is NG. */
typedef struct aibox_sound_fit_opts {
    aibox_sound_opts sound;          /* input must be AIBOX_SOUND_FEATURES; default: aibox_sound_opts_default with 32 mels */
    double reg;                      /* default 0.01 */
    double held_out;                 /* fraction of each recording's windows held out (default 0.2) */
    aibox_threshold_spec threshold;  /* default max */
    int channel;                     /* as aibox_sound_data_opts */
    long max_frames;
    int threads;
} aibox_sound_fit_opts;
AIBOX_API void aibox_sound_fit_opts_default(aibox_sound_fit_opts *o, double rate);
/* Fits from recordings in memory (mono, any rate: resampled) or from files
 * (read one at a time with channel and max_frames; threads: the windows'
 * features, 0: the default; the model does not depend on it). Refused
 * (AIBOX_E_INVALID, saying why): input other than FEATURES, reg outside
 * 0 .. 1e6, held_out outside (0, 1), a recording that is not mono or is
 * shorter than one window, fewer than 2 fit windows in all, with reg 0 fewer
 * than features + 1, no held-out window (unless the rule is a fixed number),
 * a covariance that is not positive definite. A non-finite sample is
 * AIBOX_E_NONFINITE naming the recording and the window. st (may be NULL):
 * the held-out scores' figures. */
AIBOX_API aibox_status aibox_sound_detector_fit(aibox_model **m, const aibox_signal *recs, int n,
                                                const aibox_sound_fit_opts *o, aibox_threshold_stats *st,
                                                aibox_error *err);
AIBOX_API aibox_status aibox_sound_detector_fit_files(aibox_model **m, const char *const *paths, int n,
                                                      const aibox_sound_fit_opts *o, aibox_threshold_stats *st,
                                                      aibox_error *err);

/* ------------------------------------------------------------------ listener */
/* Judges windows of one recording or stream with any signal model: a
 * classifier (aibox-train on recordings) or a detector. It owns its resampler
 * (libsamplerate, streaming) when the input rate differs from the model's,
 * and a buffer of one window: memory is constant whatever the length fed. It
 * borrows the model (which must outlive it). One thread per listener. */
typedef struct aibox_listener aibox_listener;
typedef struct aibox_sound_result {
    long index;              /* window number from the start of the input */
    double t_start, t_end;   /* seconds of input covered */
    int anomaly;             /* 1: a detector's result (score...), 0: a classifier's (label...) */
    int label;               /* classifier: the most probable class, its probability and label */
    double confidence;
    const char *name;        /* borrowed from the listener */
    double score, norm_score, threshold; /* detector: Mahalanobis distance, 0.5 at the threshold */
    int ng;                  /* detector: score >= threshold (NaN: NG) */
} aibox_sound_result;        /* a detector's: label -1, confidence 0, name NULL; a classifier's: score 0 */
typedef aibox_status (*aibox_listener_fn)(void *user, const aibox_sound_result *r, const double *probs,
                                          aibox_error *err);
/* input_rate: the rate of what will be fed (> 0; 1/256 .. 256 times the
 * model's). A detector is a model whose AIBOX_META_TASK is "gaussian" (its
 * thresholds are required: AIBOX_E_FORMAT without them); any other sound
 * model is a classifier (probabilities: the softmax of its outputs, or the
 * outputs when aibox_model_outputs_probabilities; class names from
 * AIBOX_META_CLASS_NAMES, else "0", "1", ... as aibox_classifier). A model
 * without sound settings is AIBOX_E_NOTFOUND; an image anomaly method's
 * AIBOX_E_UNSUPPORTED. threads: the classifier's context (0: the default);
 * a detector runs on one. */
AIBOX_API aibox_status aibox_listener_create(aibox_listener **l, const aibox_model *m, double input_rate,
                                             int threads, aibox_error *err);
AIBOX_API void aibox_listener_free(aibox_listener **l);
AIBOX_API const aibox_sound_opts *aibox_listener_opts(const aibox_listener *l);
AIBOX_API int aibox_listener_classes(const aibox_listener *l);        /* 0 for a detector */
AIBOX_API const char *aibox_listener_class_name(const aibox_listener *l, int k);
AIBOX_API int aibox_listener_is_detector(const aibox_listener *l);
/* Feeds n mono samples at the input rate; fn is called for every window
 * completed (probs: the classes' probabilities, NULL for a detector). A
 * non-zero status from fn stops and is returned. The results do not depend
 * on how the input is cut into pushes (resampled input goes to the
 * converter in fixed blocks of 1024 samples: that much latency). A
 * non-finite sample refuses the whole push before any of it is used
 * (AIBOX_E_NONFINITE naming the window and the sample): the listener goes on
 * as if the push had not been made. */
AIBOX_API aibox_status aibox_listener_push(aibox_listener *l, const float *x, long n, aibox_listener_fn fn,
                                           void *user, aibox_error *err);
/* A recording's verdict from its windows: classifier — the class with the
 * highest mean probability over the windows (confidence: that mean);
 * detector — the mean window score against the threshold (NG when it fails
 * the threshold, as a window), and the count of NG windows. */
typedef struct aibox_sound_summary {
    long windows;
    int anomaly;
    int label;
    double confidence;
    const char *name;         /* borrowed from the listener */
    double score, norm_score; /* detector */
    int ng;
    long ng_windows;
    long dropped;             /* input samples after the last whole window */
} aibox_sound_summary;
/* Ends the input: flushes the resampler (fn may be called for last windows),
 * fills *sum (may be NULL) over every window since the last finish (windows
 * 0: the input was shorter than one window; label -1, name NULL, score 0,
 * ng 0; a detector's summary has label -1 too) and starts again from window
 * 0 (also when it fails). */
AIBOX_API aibox_status aibox_listener_finish(aibox_listener *l, aibox_listener_fn fn, void *user,
                                             aibox_sound_summary *sum, aibox_error *err);

#ifdef __cplusplus
}
#endif

#endif
