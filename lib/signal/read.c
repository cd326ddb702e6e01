/* Reading signals: audio files (libsndfile), raw little-endian streams, CSV
 * columns; resampling (libsamplerate). Contract in include/aibox/signal.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <samplerate.h>
#include <sndfile.h>

#include "aibox/signal.h"
#include "core/core.h"

#define MAX_CHANNELS 64
#define BLOCK_FRAMES 4096L /* frames decoded per call: bounded scratch whatever the file says */

void aibox_signal_free(aibox_signal *s)
{
    if (!s) return;
    free(s->data);
    memset(s, 0, sizeof *s);
}

static int rate_ok(double r) { return isfinite(r) && r > 0 && r <= 1e9; }

/* ------------------------------------------------------------ accumulator */
/* Collects decoded blocks of in_ch interleaved channels into the output,
 * picking or mixing channels as it goes. The buffer grows with what was
 * decoded (doubling), never with what a header claims. */
typedef struct acc {
    float *data;
    long frames, cap, max;
    int in_ch, out_ch, pick;
    const char *name;
} acc;

static aibox_status acc_init(acc *a, const char *name, int in_ch, const aibox_signal_opts *opts, aibox_error *err)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    a->in_ch = in_ch;
    a->pick = opts ? opts->channel : AIBOX_CHANNEL_ALL;
    a->max = opts && opts->max_frames > 0 ? opts->max_frames : AIBOX_SIGNAL_MAX_FRAMES;
    if (a->pick >= in_ch || a->pick < AIBOX_CHANNEL_MIX)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: channel %d asked for, the signal has %d (0..%d)", name, a->pick,
                          in_ch, in_ch - 1);
    a->out_ch = a->pick == AIBOX_CHANNEL_ALL ? in_ch : 1;
    return AIBOX_OK;
}

/* hint: a first capacity (already bounded by the caller by what the input
 * can hold). */
static aibox_status acc_push(acc *a, const float *blk, long n, long hint, aibox_error *err)
{
    for (long i = 0; i < n * a->in_ch; i++)
        if (!isfinite(blk[i]))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: sample of frame %ld, channel %ld is not a finite number",
                              a->name, a->frames + i / a->in_ch, i % a->in_ch);
    if (n > a->max - a->frames)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: longer than the %ld frames allowed (max_frames)", a->name,
                          a->max);
    if (a->frames + n > a->cap) {
        long cap = AIBOX_MAX(a->cap * 2, AIBOX_MAX(a->frames + n, AIBOX_MIN(hint, a->max)));
        cap = AIBOX_MAX(AIBOX_MIN(cap, a->max), a->frames + n);
        size_t bytes;
        if (!aibox_mul_ok((size_t)cap, (size_t)a->out_ch * sizeof(float), &bytes))
            return aibox_fail(err, AIBOX_E_NOMEM, "%s: %ld frames do not fit in memory", a->name, cap);
        float *p = realloc(a->data, bytes);
        if (!p) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory for %ld frames", a->name, cap);
        a->data = p;
        a->cap = cap;
    }
    float *o = a->data + (size_t)a->frames * a->out_ch;
    if (a->pick == AIBOX_CHANNEL_ALL) {
        memcpy(o, blk, (size_t)n * a->in_ch * sizeof(float));
    } else if (a->pick == AIBOX_CHANNEL_MIX) {
        for (long f = 0; f < n; f++) {
            double sum = 0; /* double: the mean of many channels keeps float's last bit */
            for (int c = 0; c < a->in_ch; c++) sum += blk[f * a->in_ch + c];
            o[f] = (float)(sum / a->in_ch);
        }
    } else {
        for (long f = 0; f < n; f++) o[f] = blk[f * a->in_ch + a->pick];
    }
    a->frames += n;
    return AIBOX_OK;
}

static void acc_give(acc *a, aibox_signal *s, double rate)
{
    s->data = a->data;
    s->frames = a->frames;
    s->channels = a->out_ch;
    s->rate = rate;
    a->data = NULL;
}

/* ------------------------------------------------------------ libsndfile */
static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* The data length a RIFF/RF64 WAVE header declares, in bytes; -1 when the
 * file is no such WAVE or the length is unknown (0 or 0xFFFFFFFF: written to
 * a pipe). libsndfile clamps a declared length to the file's size without
 * telling, so a truncated WAV would otherwise read as a shorter recording. */
static int64_t wav_declared_bytes(int fd)
{
    unsigned char h[4096];
    ssize_t n = pread(fd, h, sizeof h, 0);
    if (n < 12 || memcmp(h + 8, "WAVE", 4) != 0) return -1;
    int rf64 = memcmp(h, "RF64", 4) == 0;
    if (!rf64 && memcmp(h, "RIFF", 4) != 0) return -1;
    int64_t ds64 = -1;
    for (ssize_t off = 12; off + 8 <= n;) {
        uint32_t size = le32(h + off + 4);
        if (rf64 && memcmp(h + off, "ds64", 4) == 0 && off + 24 <= n) {
            uint64_t v = le64(h + off + 16); /* after riffSize: dataSize */
            ds64 = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
        }
        if (memcmp(h + off, "data", 4) == 0) {
            if (rf64 && size == 0xFFFFFFFFu) return ds64;
            return size == 0 || size == 0xFFFFFFFFu ? -1 : (int64_t)size;
        }
        off += 8 + (ssize_t)size + (size & 1);
        if (off < 0) break;
    }
    return -1;
}

/* Bytes one sample takes in an uncompressed subtype; 0 for others (FLAC,
 * ADPCM ...), whose length only the decoder knows. */
static int pcm_bytes(int format)
{
    switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8: case SF_FORMAT_PCM_U8: return 1;
    case SF_FORMAT_PCM_16: return 2;
    case SF_FORMAT_PCM_24: return 3;
    case SF_FORMAT_PCM_32: case SF_FORMAT_FLOAT: return 4;
    case SF_FORMAT_DOUBLE: return 8;
    default: return 0;
    }
}

aibox_status aibox_signal_load(aibox_signal *s, const char *path, const aibox_signal_opts *opts, aibox_error *err)
{
    if (!s || !path) return aibox_fail(err, AIBOX_E_INVALID, "signal load: NULL argument");
    memset(s, 0, sizeof *s);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it would hang
     * forever on a FIFO with none); it is refused below, and on a regular
     * file the flag changes nothing */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return aibox_fail(err, AIBOX_E_IO, "%s: not a regular file (a folder, FIFO or device)", path);
    }
    int64_t declared = wav_declared_bytes(fd);
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_fd(fd, SFM_READ, &info, 1); /* closes fd, also on failure */
    if (!sf) {
        /* sf_strerror(NULL): the reason of the last failed open */
        return aibox_fail(err, AIBOX_E_FORMAT, "%s: not a sound file this build reads (libsndfile: %s)", path,
                          sf_strerror(NULL));
    }
    aibox_status r = AIBOX_OK;
    acc a;
    memset(&a, 0, sizeof a);
    float *blk = NULL;
    if (info.channels < 1 || info.channels > MAX_CHANNELS) {
        r = aibox_fail(err, AIBOX_E_FORMAT, "%s: %d channels (1..%d read)", path, info.channels, MAX_CHANNELS);
        goto done;
    }
    if (info.samplerate <= 0) {
        r = aibox_fail(err, AIBOX_E_FORMAT, "%s: sample rate %d Hz", path, info.samplerate);
        goto done;
    }
    if ((r = acc_init(&a, path, info.channels, opts, err)) != AIBOX_OK) goto done;
    int bps = pcm_bytes(info.format);
    int64_t claimed = info.frames; /* what the header says, after libsndfile's own clamping */
    if (declared >= 0 && bps > 0) claimed = declared / ((int64_t)bps * info.channels);
    if (claimed > a.max) {
        r = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: header says %lld frames, more than the %ld allowed (max_frames)",
                       path, (long long)claimed, a.max);
        goto done;
    }
    /* first capacity: what the header says, but never more than the bytes
     * on disk can hold (uncompressed) or 2^20 frames (compressed: grows) */
    long hint = (long)AIBOX_MIN(info.frames > 0 ? info.frames : 0, (sf_count_t)a.max);
    if (bps > 0) hint = (long)AIBOX_MIN((int64_t)hint, (int64_t)st.st_size / ((int64_t)bps * info.channels) + 1);
    else hint = AIBOX_MIN(hint, 1L << 20);
    blk = malloc((size_t)BLOCK_FRAMES * info.channels * sizeof(float));
    if (!blk) {
        r = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (;;) {
        sf_count_t got = sf_readf_float(sf, blk, BLOCK_FRAMES);
        if (got <= 0) break;
        if ((r = acc_push(&a, blk, (long)got, hint, err)) != AIBOX_OK) goto done;
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        r = aibox_fail(err, AIBOX_E_CORRUPT,
                       "%s: corrupt or truncated: header says %lld frames, decoding failed after %ld (libsndfile: %s)",
                       path, (long long)claimed, a.frames, sf_strerror(sf));
        goto done;
    }
    if (claimed > a.frames) {
        r = aibox_fail(err, AIBOX_E_CORRUPT, "%s: truncated: header says %lld frames, file holds %ld", path,
                       (long long)claimed, a.frames);
        goto done;
    }
    if (a.frames == 0) {
        r = aibox_fail(err, AIBOX_E_FORMAT, "%s: no samples", path);
        goto done;
    }
    acc_give(&a, s, info.samplerate);
done:
    free(blk);
    free(a.data);
    sf_close(sf);
    return r;
}

/* ------------------------------------------------------------ raw streams */
static int raw_bytes(aibox_raw_format fmt) { return fmt == AIBOX_RAW_F32LE ? 4 : fmt == AIBOX_RAW_S16LE ? 2 : 0; }

/* Little-endian bytes to floats, whatever this machine's order. */
static void raw_decode(aibox_raw_format fmt, const unsigned char *b, long n, float *out)
{
    if (fmt == AIBOX_RAW_F32LE) {
        for (long i = 0; i < n; i++) {
            uint32_t u = le32(b + 4 * i);
            memcpy(out + i, &u, 4);
        }
    } else {
        for (long i = 0; i < n; i++) out[i] = (float)(int16_t)(b[2 * i] | b[2 * i + 1] << 8) / 32768.0f;
    }
}

static aibox_status raw_args(const char *name, aibox_raw_format fmt, int channels, double rate, aibox_error *err)
{
    if (!raw_bytes(fmt)) return aibox_fail(err, AIBOX_E_INVALID, "%s: unknown raw sample format %d", name, (int)fmt);
    if (channels < 1 || channels > MAX_CHANNELS)
        return aibox_fail(err, AIBOX_E_INVALID, "%s: %d channels (1..%d)", name, channels, MAX_CHANNELS);
    if (!rate_ok(rate))
        return aibox_fail(err, AIBOX_E_INVALID, "%s: sample rate %g is not a positive number of Hz (give --rate)", name,
                          rate);
    return AIBOX_OK;
}

aibox_status aibox_signal_read_raw(aibox_signal *s, FILE *f, const char *name, aibox_raw_format fmt, int channels,
                                   double rate, const aibox_signal_opts *opts, aibox_error *err)
{
    if (!s || !f) return aibox_fail(err, AIBOX_E_INVALID, "signal raw: NULL argument");
    memset(s, 0, sizeof *s);
    if (!name) name = "(stream)";
    aibox_status r = raw_args(name, fmt, channels, rate, err);
    if (r) return r;
    acc a;
    if ((r = acc_init(&a, name, channels, opts, err)) != AIBOX_OK) return r;
    size_t fb = (size_t)raw_bytes(fmt) * channels;
    unsigned char *bytes = malloc(BLOCK_FRAMES * fb);
    float *blk = malloc(BLOCK_FRAMES * (size_t)channels * sizeof(float));
    size_t carry = 0; /* bytes of a frame that the last read split */
    if (!bytes || !blk) {
        r = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (;;) {
        size_t n = fread(bytes + carry, 1, BLOCK_FRAMES * fb - carry, f) + carry;
        long frames = (long)(n / fb);
        carry = n % fb;
        if (frames > 0) {
            raw_decode(fmt, bytes, frames * channels, blk);
            if ((r = acc_push(&a, blk, frames, 1L << 16, err)) != AIBOX_OK) goto done;
            memmove(bytes, bytes + (size_t)frames * fb, carry);
        }
        if (n < BLOCK_FRAMES * fb) {
            if (ferror(f)) {
                r = aibox_fail(err, AIBOX_E_IO, "%s: read error after %ld frames: %s", name, a.frames, strerror(errno));
                goto done;
            }
            if (feof(f)) break;
        }
    }
    if (carry) {
        r = aibox_fail(err, AIBOX_E_CORRUPT,
                       "%s: stream ends inside a frame: %zu bytes left over after %ld whole frames of %zu bytes "
                       "(%d channels x %d bytes)",
                       name, carry, a.frames, fb, channels, raw_bytes(fmt));
        goto done;
    }
    if (a.frames == 0) {
        r = aibox_fail(err, AIBOX_E_CORRUPT, "%s: empty stream", name);
        goto done;
    }
    acc_give(&a, s, rate);
done:
    free(bytes);
    free(blk);
    free(a.data);
    return r;
}

aibox_status aibox_signal_load_raw(aibox_signal *s, const char *path, aibox_raw_format fmt, int channels, double rate,
                                   const aibox_signal_opts *opts, aibox_error *err)
{
    if (!s || !path) return aibox_fail(err, AIBOX_E_INVALID, "signal raw: NULL argument");
    memset(s, 0, sizeof *s);
    if (strcmp(path, "-") == 0) return aibox_signal_read_raw(s, stdin, "stdin", fmt, channels, rate, opts, err);
    FILE *f = fopen(path, "rb");
    if (!f) return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: %s", path, strerror(errno));
    aibox_status r = aibox_signal_read_raw(s, f, path, fmt, channels, rate, opts, err);
    fclose(f);
    return r;
}

/* ------------------------------------------------------------ CSV */
/* Splits line (modified in place) at sep into at most cap cells; trims
 * blanks and one pair of double quotes. Returns the cell count. */
static int csv_split(char *line, char sep, char **cells, int cap)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *e = strchr(p, sep);
        if (e) *e = 0;
        while (isspace((unsigned char)*p)) p++;
        size_t len = strlen(p);
        while (len && isspace((unsigned char)p[len - 1])) p[--len] = 0;
        if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
            p[len - 1] = 0;
            p++;
        }
        if (n < cap) cells[n] = p;
        n++;
        if (!e) break;
        p = e + 1;
    }
    return n;
}

static int csv_number(const char *cell, double *v)
{
    if (!*cell) return 0;
    char *end;
    errno = 0;
    *v = strtod(cell, &end);
    return *end == 0 && isfinite(*v);
}

#define CSV_MAX_COLS 4096

aibox_status aibox_signal_load_csv(aibox_signal *s, const char *path, const char *column, double rate,
                                   long max_frames, aibox_error *err)
{
    if (!s || !path) return aibox_fail(err, AIBOX_E_INVALID, "signal csv: NULL argument");
    memset(s, 0, sizeof *s);
    if (!rate_ok(rate))
        return aibox_fail(err, AIBOX_E_INVALID, "%s: sample rate %g is not a positive number of Hz (give --rate)", path,
                          rate);
    FILE *f = fopen(path, "rb");
    if (!f) return aibox_fail(err, errno == ENOENT ? AIBOX_E_NOTFOUND : AIBOX_E_IO, "%s: %s", path, strerror(errno));
    aibox_signal_opts o = {.channel = 0, .max_frames = max_frames};
    acc a;
    aibox_status r = acc_init(&a, path, 1, &o, err);
    char *line = NULL;
    size_t lcap = 0;
    char **cells = malloc(CSV_MAX_COLS * sizeof *cells);
    if (!cells) r = aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", path);
    char sep = 0;
    int col = -1; /* chosen column, 0-based; -1 until known */
    long row = 0;
    ssize_t len;
    while (r == AIBOX_OK && (len = getline(&line, &lcap, f)) >= 0) {
        row++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (strspn(line, " \t") == (size_t)len) continue; /* blank line */
        if ((size_t)len != strlen(line)) {
            r = aibox_fail(err, AIBOX_E_FORMAT, "%s: row %ld holds a NUL byte (not text)", path, row);
            break;
        }
        if (!sep) sep = strchr(line, ',') ? ',' : strchr(line, ';') ? ';' : strchr(line, '\t') ? '\t' : ',';
        int n = csv_split(line, sep, cells, CSV_MAX_COLS);
        if (n > CSV_MAX_COLS) {
            r = aibox_fail(err, AIBOX_E_UNSUPPORTED, "%s: row %ld has %d columns (at most %d)", path, row, n,
                           CSV_MAX_COLS);
            break;
        }
        if (col < 0) {
            /* the first row: a header when any of its cells is not a number */
            int header = 0;
            double v;
            for (int i = 0; i < n; i++) header |= !csv_number(cells[i], &v);
            const char *c = column && *column ? column : "0";
            char *end;
            long idx = strtol(c, &end, 10);
            if (*end == 0 && isdigit((unsigned char)c[0])) {
                if (idx >= n) {
                    r = aibox_fail(err, AIBOX_E_NOTFOUND, "%s: column %ld asked for, row %ld has %d (0..%d)", path, idx,
                                   row, n, n - 1);
                    break;
                }
                col = (int)idx;
            } else {
                for (int i = 0; header && i < n && col < 0; i++)
                    if (strcmp(cells[i], c) == 0) col = i;
                if (col < 0) {
                    r = aibox_fail(err, AIBOX_E_NOTFOUND, "%s: no column named \"%s\" %s", path, c,
                                   header ? "in the header row" : "(the file has no header row)");
                    break;
                }
            }
            if (header) continue;
        }
        if (col >= n) {
            r = aibox_fail(err, AIBOX_E_FORMAT, "%s: row %ld, column %d: missing (the row has %d columns)", path, row,
                           col + 1, n);
            break;
        }
        double v;
        if (!csv_number(cells[col], &v)) {
            r = aibox_fail(err, AIBOX_E_FORMAT, "%s: row %ld, column %d: \"%.40s\" is not a finite number", path, row,
                           col + 1, cells[col]);
            break;
        }
        float x = (float)v;
        r = acc_push(&a, &x, 1, 1L << 16, err);
    }
    if (r == AIBOX_OK && ferror(f)) r = aibox_fail(err, AIBOX_E_IO, "%s: read error at row %ld", path, row);
    if (r == AIBOX_OK && a.frames == 0) r = aibox_fail(err, AIBOX_E_FORMAT, "%s: no samples", path);
    if (r == AIBOX_OK) acc_give(&a, s, rate);
    free(line);
    free(cells);
    free(a.data);
    fclose(f);
    return r;
}

/* ------------------------------------------------------------ resampling */
aibox_status aibox_signal_resample(const aibox_signal *in, double rate, aibox_signal *out, aibox_error *err)
{
    if (!in || !out || in == out) return aibox_fail(err, AIBOX_E_INVALID, "resample: NULL or in-place argument");
    memset(out, 0, sizeof *out);
    if (!in->data || in->frames < 1 || in->channels < 1 || in->channels > MAX_CHANNELS || !rate_ok(in->rate))
        return aibox_fail(err, AIBOX_E_INVALID, "resample: empty or malformed input signal");
    if (!rate_ok(rate)) return aibox_fail(err, AIBOX_E_INVALID, "resample: target rate %g is not a positive number of Hz", rate);
    double ratio = rate / in->rate;
    if (!src_is_valid_ratio(ratio))
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "resample: %g Hz to %g Hz (ratio %g; 1/256..256 supported)", in->rate,
                          rate, ratio);
    double want = ceil((double)in->frames * ratio);
    if (want > (double)AIBOX_SIGNAL_MAX_FRAMES)
        return aibox_fail(err, AIBOX_E_UNSUPPORTED, "resample: %.0f frames out, more than %ld", want,
                          AIBOX_SIGNAL_MAX_FRAMES);
    long cap = (long)want + 1;
    size_t n = (size_t)cap * in->channels;
    out->data = malloc(n * sizeof(float));
    if (!out->data) return aibox_fail(err, AIBOX_E_NOMEM, "resample: out of memory for %ld frames", cap);
    if (ratio == 1.0) {
        memcpy(out->data, in->data, (size_t)in->frames * in->channels * sizeof(float));
        out->frames = in->frames;
    } else {
        /* SINC_MEDIUM: 121 dB SNR over 90% of the band (BEST: 145 dB, 96%)
         * at a fraction of BEST's time; either is beyond what 16-bit audio
         * or float32 sensor data holds */
        SRC_DATA d;
        memset(&d, 0, sizeof d);
        d.data_in = in->data;
        d.data_out = out->data;
        d.input_frames = in->frames;
        d.output_frames = cap;
        d.src_ratio = ratio;
        d.end_of_input = 1;
        int e = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, in->channels);
        if (e) {
            aibox_signal_free(out);
            return aibox_fail(err, AIBOX_E_INVALID, "resample: libsamplerate: %s", src_strerror(e));
        }
        out->frames = d.output_frames_gen;
    }
    out->channels = in->channels;
    out->rate = rate;
    return AIBOX_OK;
}

/* ------------------------------------------------------------ streams */
struct aibox_signal_stream {
    FILE *f;
    char *name;
    aibox_raw_format fmt;
    int channels;
    double rate;
    long chunk, done; /* frames per chunk; frames delivered */
    unsigned char *bytes; /* one chunk: constant memory however long the stream */
    size_t partial;       /* bytes of a frame the stream ended inside */
};

aibox_status aibox_signal_stream_open(aibox_signal_stream **st, FILE *f, const char *name, aibox_raw_format fmt,
                                      int channels, double rate, long chunk_frames, aibox_error *err)
{
    if (!st || !f) return aibox_fail(err, AIBOX_E_INVALID, "signal stream: NULL argument");
    *st = NULL;
    if (!name) name = "(stream)";
    aibox_status r = raw_args(name, fmt, channels, rate, err);
    if (r) return r;
    if (chunk_frames < 1 || chunk_frames > (1L << 24))
        return aibox_fail(err, AIBOX_E_INVALID, "%s: chunk of %ld frames (1..%ld)", name, chunk_frames, 1L << 24);
    aibox_signal_stream *s = calloc(1, sizeof *s);
    if (!s) return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", name);
    s->f = f;
    s->fmt = fmt;
    s->channels = channels;
    s->rate = rate;
    s->chunk = chunk_frames;
    s->name = strdup(name);
    s->bytes = malloc((size_t)chunk_frames * channels * raw_bytes(fmt));
    if (!s->name || !s->bytes) {
        aibox_signal_stream_close(&s);
        return aibox_fail(err, AIBOX_E_NOMEM, "%s: out of memory", name);
    }
    *st = s;
    return AIBOX_OK;
}

aibox_status aibox_signal_stream_next(aibox_signal_stream *st, float *out, long *got, aibox_error *err)
{
    if (got) *got = 0;
    if (!st || !out || !got) return aibox_fail(err, AIBOX_E_INVALID, "signal stream: NULL argument");
    size_t fb = (size_t)raw_bytes(st->fmt) * st->channels;
    size_t want = (size_t)st->chunk * fb;
    size_t n = fread(st->bytes, 1, want, st->f); /* fread loops over short reads of a pipe */
    if (n < want && ferror(st->f)) return aibox_fail(err, AIBOX_E_IO, "%s: read error: %s", st->name, strerror(errno));
    long frames = (long)(n / fb);
    raw_decode(st->fmt, st->bytes, frames * st->channels, out);
    for (long i = 0; i < frames * st->channels; i++)
        if (!isfinite(out[i]))
            return aibox_fail(err, AIBOX_E_FORMAT, "%s: sample of frame %ld, channel %ld is not a finite number",
                              st->name, st->done + i / st->channels, i % st->channels);
    *got = frames;
    st->done += frames;
    if (n == want || n == 0) {
        if (n == 0) *got = 0;
        return AIBOX_OK;
    }
    st->partial = n % fb;
    return aibox_fail(err, AIBOX_E_CORRUPT,
                      "%s: stream ends inside a chunk: %ld of %ld frames and %zu bytes of a partial frame", st->name,
                      frames, st->chunk, n % fb);
}

size_t aibox_signal_stream_partial_bytes(const aibox_signal_stream *st) { return st ? st->partial : 0; }

void aibox_signal_stream_close(aibox_signal_stream **st)
{
    if (!st || !*st) return;
    free((*st)->name);
    free((*st)->bytes);
    free(*st);
    *st = NULL;
}
