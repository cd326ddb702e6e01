/*
 * libaibox — reading signals: sound and vibration recordings.
 *
 * Self-contained: it includes aibox.h itself; aibox.h includes this file at
 * its END. The conventions of aibox.h hold.
 *
 * Sources:
 *   - audio files through libsndfile (LGPL-2.1+): WAV (PCM 16/24/32 bit,
 *     IEEE float), FLAC, and whatever else that library reads;
 *   - raw little-endian float32 or int16 samples, from a file or a FILE*
 *     (stdin), the rate given by the caller (a raw stream carries none);
 *   - one numeric column of a CSV file, the rate given by the caller.
 * Resampling goes through libsamplerate (BSD-2-Clause since 0.1.9).
 *
 * Samples are floats; integer PCM is scaled to [-1, 1) (int16 v -> v/32768),
 * float files keep their values. Frames are interleaved: sample c of frame f
 * is data[f * channels + c], as libsndfile and raw streams lay them out.
 *
 * Untrusted input: a declared length is never allocated before it is
 * checked; buffers grow with what is actually decoded, up to max_frames. A
 * file whose header promises more frames than it holds is refused
 * (AIBOX_E_CORRUPT, "truncated: header says N frames, file holds M"), never
 * padded; a raw stream that ends inside a frame is refused with the bytes
 * left over.
 */
#ifndef AIBOX_SIGNAL_H
#define AIBOX_SIGNAL_H

#include <stdio.h>

#include "../aibox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A recording in memory. data is owned (malloc) and released by
 * aibox_signal_free; a zeroed struct is an empty signal. */
typedef struct aibox_signal {
    float *data;  /* frames * channels samples, interleaved */
    long frames;
    int channels;
    double rate;  /* samples per second per channel, > 0 */
} aibox_signal;

/* Channel choice (aibox_signal_opts.channel): every channel as stored, or
 * their mean (one channel); 0..channels-1 picks one. */
#define AIBOX_CHANNEL_ALL (-1)
#define AIBOX_CHANNEL_MIX (-2)

/* Default cap on the frames one call reads: 2^28 (about 93 minutes at
 * 48 kHz, 1 GiB of float samples per channel). */
#define AIBOX_SIGNAL_MAX_FRAMES (1L << 28)

typedef struct aibox_signal_opts {
    int channel;     /* AIBOX_CHANNEL_ALL, AIBOX_CHANNEL_MIX or a channel index. NB a zeroed
                        struct picks channel 0; opts NULL reads every channel */
    long max_frames; /* refuse longer recordings (AIBOX_E_UNSUPPORTED); 0: AIBOX_SIGNAL_MAX_FRAMES */
} aibox_signal_opts;

/* Raw sample formats (little-endian whatever the machine). */
typedef enum aibox_raw_format {
    AIBOX_RAW_F32LE = 1,
    AIBOX_RAW_S16LE = 2
} aibox_raw_format;

/* Releases s->data and zeroes *s (NULL or an empty signal: nothing). */
AIBOX_API void aibox_signal_free(aibox_signal *s);

/* An audio file through libsndfile (WAV, FLAC, ...). opts may be NULL.
 * Errors: AIBOX_E_IO (cannot open), AIBOX_E_FORMAT (not a sound file
 * libsndfile knows, bad header), AIBOX_E_CORRUPT (truncated, undecodable
 * data), AIBOX_E_INVALID (no such channel), AIBOX_E_UNSUPPORTED (longer than
 * max_frames). On error *s is left empty. */
AIBOX_API aibox_status aibox_signal_load(aibox_signal *s, const char *path, const aibox_signal_opts *opts,
                                         aibox_error *err);

/* Raw interleaved samples until end of file: fmt, channels (1..64) and rate
 * (finite, > 0) are the caller's word. name labels messages ("stdin").
 * opts picks channels as for aibox_signal_load (NULL: all). A stream whose
 * length is not a whole number of frames is refused (AIBOX_E_CORRUPT,
 * naming the bytes left over); so is an empty one. */
AIBOX_API aibox_status aibox_signal_read_raw(aibox_signal *s, FILE *f, const char *name, aibox_raw_format fmt,
                                             int channels, double rate, const aibox_signal_opts *opts,
                                             aibox_error *err);
/* The same from a file ("-": stdin). */
AIBOX_API aibox_status aibox_signal_load_raw(aibox_signal *s, const char *path, aibox_raw_format fmt, int channels,
                                             double rate, const aibox_signal_opts *opts, aibox_error *err);

/* One column of a CSV file as a mono signal. column: a header name, or a
 * 0-based index written in decimal ("2"); a first row that does not parse as
 * numbers is the header. Separators: comma, semicolon or tab (the first row
 * decides); blank lines and a final newline are ignored. A cell that is not
 * a finite number is refused with its row and column (1-based, as a
 * spreadsheet shows them). */
AIBOX_API aibox_status aibox_signal_load_csv(aibox_signal *s, const char *path, const char *column, double rate,
                                             long max_frames, aibox_error *err);

/* Resamples in to rate (finite, > 0) into *out (a new signal; out may not be
 * in): libsamplerate's SRC_SINC_MEDIUM_QUALITY converter (band-limited sinc,
 * anti-aliasing included), all channels. The same rate: a copy. */
AIBOX_API aibox_status aibox_signal_resample(const aibox_signal *in, double rate, aibox_signal *out,
                                             aibox_error *err);

/* ---------------------------------------------------------------- streams */
/* Fixed-size chunks of a raw stream in constant memory (a live sensor on
 * stdin): each call to aibox_signal_stream_next fills the caller's chunk of
 * `frames` frames x channels floats. */
typedef struct aibox_signal_stream aibox_signal_stream;

/* f stays the caller's (not closed). channels 1..64, rate finite > 0,
 * chunk_frames >= 1. */
AIBOX_API aibox_status aibox_signal_stream_open(aibox_signal_stream **st, FILE *f, const char *name,
                                                aibox_raw_format fmt, int channels, double rate, long chunk_frames,
                                                aibox_error *err);
/* The next chunk into out (chunk_frames * channels floats). AIBOX_OK: *got
 * is chunk_frames; at a clean end of stream (on a chunk boundary) AIBOX_OK
 * with *got 0. A stream that ends inside a chunk: AIBOX_E_CORRUPT naming the
 * frames (and bytes) it held, *got the whole frames that were read (they are
 * in out). */
AIBOX_API aibox_status aibox_signal_stream_next(aibox_signal_stream *st, float *out, long *got, aibox_error *err);
/* After the stream ended inside a frame: the bytes of that frame it held
 * (0 otherwise). */
AIBOX_API size_t aibox_signal_stream_partial_bytes(const aibox_signal_stream *st);
AIBOX_API void aibox_signal_stream_close(aibox_signal_stream **st);

#ifdef __cplusplus
}
#endif

/* sound.h builds on this header: when this header was read first, aibox.h
 * reached sound.h too early and skipped it; now it can be read. */
#include "sound.h"

#endif
