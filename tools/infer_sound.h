/* aibox-infer on sound and vibration models (tools/infer_sound.c): a line per
 * window and per recording of sound files, or per window of an endless raw
 * sample stream (--stream). aibox-infer parses these options beside its own
 * and hands a signal model over to sound_infer_main. */
#ifndef AIBOX_INFER_SOUND_H
#define AIBOX_INFER_SOUND_H

#include "aibox.h"

typedef struct sound_cli {
    int stream;           /* --stream */
    double rate;          /* --rate HZ; 0: not given */
    aibox_raw_format raw; /* --format-raw (default f32le) */
    long channels;        /* --channels (default 1) */
    int channel;          /* --channel N|mix (default AIBOX_CHANNEL_MIX) */
    int no_windows;       /* --windows none */
    int stream_only;      /* --rate, --format-raw or --channels given (they describe a raw stream) */
    int given;            /* any of these options given */
} sound_cli;

/* The options' lines for aibox-infer --help (man/aibox-infer.1 documents them). */
#define SOUND_USAGE                                                                                              \
    "Sound and vibration models (aibox-train sound or sound-outlier): the inputs are recordings\n"              \
    "(WAV, FLAC, ... through libsndfile; a folder: every sound file in it). One JSON line per window,\n"        \
    "then one per recording (\"recording\": true, the recording's verdict); verdicts as for images.\n"         \
    "  --windows all|none   all (default), or none: only the recording lines\n"                                 \
    "  --channel N|mix      the channel of multi-channel recordings or streams (0-based), or mix\n"             \
    "                       (default: the mean of the channels)\n"                                               \
    "  --stream             judge an endless raw sample stream instead: standard input, or the one\n"           \
    "                       FILE given (a FIFO); a line per window, flushed as soon as the window is\n"         \
    "                       complete, in constant memory; a summary line when the stream ends.\n"              \
    "                       A stream that ends inside a frame or a window: exit 2 (the windows judged\n"        \
    "                       so far stay printed; stderr says how many samples were not judged)\n"             \
    "  --rate HZ            the stream's sample rate (required with --stream: a raw stream carries none)\n"     \
    "  --format-raw F       the stream's samples: f32le (default; little-endian float32) or s16le\n"           \
    "                       (little-endian int16)\n"                                                            \
    "  --channels N         interleaved channels of the stream (default 1)\n"                                   \
    "                       e.g. arecord -f S16_LE -r 16000 -c 1 -t raw |\n"                                    \
    "                            aibox-infer -m fan.aibox --stream --rate 16000 --format-raw s16le\n"           \
    "                       Sound models print JSON lines only (--format csv and text are refused).\n"

void sound_cli_init(sound_cli *o);

/* One command-line option at argv[*i]: 0 when it is none of the above, 1
 * when taken (*i advanced past its value; on a bad value *ok = 0 and a
 * one-line error naming the option printed with prog). */
int sound_cli_parse_opt(sound_cli *o, const char *prog, int argc, char **argv, int *i, int *ok);

/* What aibox-infer was asked besides the sound options. */
typedef struct sound_infer_args {
    const char *model;
    char *const *inputs;
    int n_inputs;
    char *const *ok; /* --ok-class labels */
    int n_ok;
    double min_conf;
    int threads;
    int jsonl;           /* --format jsonl (the default) */
    const char *refused; /* an image-only option that was given (its name), or NULL */
} sound_infer_args;

/* 1 when the run is one for sound_infer_main: the model is a signal model
 * (only its metadata is read to tell) or a sound option was given. */
int sound_infer_wanted(const sound_cli *o, const char *model);

/* The whole run; returns aibox-infer's exit status (0 all OK or classified,
 * 1 an NG or uncertain recording, or with --stream window; 2 an input failed
 * or bad usage; 3 the model could not be loaded). */
int sound_infer_main(const sound_cli *o, const sound_infer_args *a);

#endif
