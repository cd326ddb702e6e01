/* Reading signals (lib/signal/read.c): WAV and FLAC written by libsndfile
 * itself read back exactly, channel choice, the real CWRU and MIMII
 * recordings against their manifests, corrupt / truncated / hostile files,
 * raw streams (pipes included) and CSV columns with their refusals, the
 * chunked stream reader, and resampling measured with a hand-written DFT. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sndfile.h>

#include "aibox.h"
#include "common/check.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return aibox_test_mkdtemp(dir, sizeof dir, "signal");
}

static int teardown(void **state)
{
    (void)state;
    return aibox_test_rm_rf(dir);
}

static void path_of(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", dir, name); }

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* The test sine of channel c at frame f: distinct per channel. */
static double sine(long f, int c, double rate) { return 0.7 * sin(2 * M_PI * (440.0 + 100.0 * c) * f / rate); }

#define FRAMES 3001 /* not a multiple of the reader's block */
#define RATE 12000

/* Writes a file of `format` with ch channels of the test sine, quantised to
 * `bits` (0: float); want receives what a reader must return. */
static void write_sine(const char *path, int format, int bits, int ch, float *want)
{
    SF_INFO info = {.samplerate = RATE, .channels = ch, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    assert_non_null(sf);
    int *iv = malloc(sizeof(int) * FRAMES * ch);
    float *fv = malloc(sizeof(float) * FRAMES * ch);
    assert_true(iv && fv);
    for (long f = 0; f < FRAMES; f++)
        for (int c = 0; c < ch; c++) {
            double x = sine(f, c, RATE);
            long i = f * ch + c;
            if (bits == 0) {
                fv[i] = (float)x;
                want[i] = fv[i];
            } else {
                double full = ldexp(1.0, bits - 1);
                long q = lrint(x * full); /* |x| <= 0.7: no clipping */
                iv[i] = (int)(q * (1L << (32 - bits))); /* sf_writef_int: left-justified in 32 bits (a multiply: q may be negative) */
                want[i] = (float)(q / full);
            }
        }
    sf_count_t n = bits == 0 ? sf_writef_float(sf, fv, FRAMES) : sf_writef_int(sf, iv, FRAMES);
    assert_int_equal(n, FRAMES);
    assert_int_equal(sf_close(sf), 0);
    free(iv);
    free(fv);
}

static void test_formats_roundtrip(void **state)
{
    (void)state;
    const struct {
        const char *name;
        int format, bits;
    } kinds[] = {
        {"pcm16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16}, {"pcm24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 24},
        {"pcm32.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 32}, {"float.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 0},
        {"f16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16}, {"f24.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 24},
    };
    float *want = malloc(sizeof(float) * FRAMES * 3);
    assert_non_null(want);
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (int ch = 1; ch <= 3; ch += 2) {
            char p[512];
            char name[64];
            snprintf(name, sizeof name, "%dch_%s", ch, kinds[k].name);
            path_of(p, sizeof p, name);
            write_sine(p, kinds[k].format, kinds[k].bits, ch, want);
            aibox_signal s = {0};
            aibox_error e = {0};
            assert_int_equal(aibox_signal_load(&s, p, NULL, &e), AIBOX_OK);
            assert_int_equal(s.frames, FRAMES);
            assert_int_equal(s.channels, ch);
            assert_true(s.rate == RATE);
            /* the stored integer over 2^(bits-1), to float's rounding; and the
             * sine itself within one step of the format */
            double step = kinds[k].bits ? ldexp(1.0, 1 - kinds[k].bits) : 0;
            double worst = 0, worst_sine = 0;
            for (long i = 0; i < FRAMES * ch; i++) {
                worst = fmax(worst, fabs(s.data[i] - want[i]));
                worst_sine = fmax(worst_sine, fabs(s.data[i] - sine(i / ch, (int)(i % ch), RATE)));
            }
            if (worst != 0 || worst_sine > fmax(step / 2, 6e-8))
                print_message("%s: worst %.3g from the stored value, %.3g from the sine\n", name, worst, worst_sine);
            assert_true(worst == 0);
            assert_true(worst_sine <= fmax(step / 2, 6e-8)); /* half a step; float: its own rounding */
            aibox_signal_free(&s);
            assert_null(s.data);
        }
    free(want);
}

static void test_channel_choice(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "three.wav");
    float *want = malloc(sizeof(float) * FRAMES * 3);
    write_sine(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 0, 3, want);
    aibox_error e = {0};
    for (int c = 0; c < 3; c++) {
        aibox_signal s = {0};
        aibox_signal_opts o = {.channel = c};
        assert_int_equal(aibox_signal_load(&s, p, &o, &e), AIBOX_OK);
        assert_int_equal(s.channels, 1);
        assert_int_equal(s.frames, FRAMES);
        for (long f = 0; f < FRAMES; f++) assert_true(s.data[f] == want[f * 3 + c]);
        aibox_signal_free(&s);
    }
    aibox_signal s = {0};
    aibox_signal_opts mix = {.channel = AIBOX_CHANNEL_MIX};
    assert_int_equal(aibox_signal_load(&s, p, &mix, &e), AIBOX_OK);
    assert_int_equal(s.channels, 1);
    for (long f = 0; f < FRAMES; f++)
        assert_true(fabs(s.data[f] - ((double)want[3 * f] + want[3 * f + 1] + want[3 * f + 2]) / 3) < 1e-7);
    aibox_signal_free(&s);
    aibox_signal_opts bad = {.channel = 3};
    assert_int_equal(aibox_signal_load(&s, p, &bad, &e), AIBOX_E_INVALID);
    assert_non_null(strstr(e.msg, "channel 3"));
    assert_null(s.data);
    aibox_signal_opts shortcap = {.channel = AIBOX_CHANNEL_ALL, .max_frames = 1000};
    assert_int_equal(aibox_signal_load(&s, p, &shortcap, &e), AIBOX_E_UNSUPPORTED);
    assert_non_null(strstr(e.msg, "max_frames"));
    free(want);
}

/* The manifest's value of field `col` for the file `rel`, or -1. */
static long manifest_value(const char *manifest, const char *rel, const char *col)
{
    FILE *f = fopen(manifest, "r");
    if (!f) return -1;
    char line[4096];
    int idx = -1;
    long v = -1;
    if (fgets(line, sizeof line, f)) {
        int i = 0;
        for (char *t = strtok(line, ",\n"); t; t = strtok(NULL, ",\n"), i++)
            if (strcmp(t, col) == 0) idx = i;
    }
    while (idx >= 0 && fgets(line, sizeof line, f)) {
        if (strncmp(line, rel, strlen(rel)) != 0 || line[strlen(rel)] != ',') continue;
        char *p = line;
        for (int i = 0; i < idx && p; i++) p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
        if (p) v = strtol(p, NULL, 10);
        break;
    }
    fclose(f);
    return v;
}

/* The real recordings: rate and length as their manifests say, and the first
 * samples as the bytes after the canonical 44-byte header hold them. */
static void test_real_recordings(void **state)
{
    (void)state;
    const char *data = getenv("AIBOX_DATA");
    const struct {
        const char *folder, *rel;
        int float32;
    } files[] = {
        {"vibration-cwru", "48k/normal/normal_0hp_X097_DE_48k.wav", 1},
        {"sound-mimii", "fan/normal/id_00_00000000_ch0.wav", 0},
    };
    int ran = 0;
    for (int k = 0; k < 2; k++) {
        char path[1024], manifest[1024];
        snprintf(path, sizeof path, "%s/sensors/%s/%s", data ? data : "../shared/data", files[k].folder, files[k].rel);
        snprintf(manifest, sizeof manifest, "%s/sensors/%s/manifest.csv", data ? data : "../shared/data",
                 files[k].folder);
        if (access(path, R_OK) != 0 || access(manifest, R_OK) != 0) {
            print_message("skipping %s: not found (set AIBOX_DATA to the shared data folder)\n", path);
            continue;
        }
        long frames = manifest_value(manifest, files[k].rel, "n_samples");
        long rate = manifest_value(manifest, files[k].rel, "sample_rate_hz");
        assert_true(frames > 0 && rate > 0);
        aibox_signal s = {0};
        aibox_error e = {0};
        assert_int_equal(aibox_signal_load(&s, path, NULL, &e), AIBOX_OK);
        assert_int_equal(s.frames, frames);
        assert_int_equal(s.channels, 1);
        assert_true(s.rate == (double)rate);
        FILE *f = fopen(path, "rb");
        unsigned char b[44 + 64 * 4];
        assert_int_equal(fread(b, 1, sizeof b, f), sizeof b);
        fclose(f);
        for (int i = 0; i < 64; i++) {
            float v;
            if (files[k].float32) {
                uint32_t u = b[44 + 4 * i] | b[45 + 4 * i] << 8 | b[46 + 4 * i] << 16 | (uint32_t)b[47 + 4 * i] << 24;
                memcpy(&v, &u, 4);
            } else {
                v = (float)(int16_t)(b[44 + 2 * i] | b[45 + 2 * i] << 8) / 32768.0f;
            }
            assert_true(s.data[i] == v);
        }
        aibox_signal_free(&s);
        ran++;
    }
    if (!ran) skip();
}

static void le32w(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i);
}

/* A canonical 44-byte PCM WAV header: mono 16-bit, data of `bytes`. */
static void wav_header(unsigned char *h, uint32_t bytes)
{
    memcpy(h, "RIFF", 4);
    le32w(h + 4, 36 + bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    le32w(h + 16, 16);
    h[20] = 1, h[21] = 0, h[22] = 1, h[23] = 0; /* PCM, 1 channel */
    le32w(h + 24, 16000);
    le32w(h + 28, 32000);
    h[32] = 2, h[33] = 0, h[34] = 16, h[35] = 0;
    memcpy(h + 36, "data", 4);
    le32w(h + 40, bytes);
}

typedef struct load_job {
    const char *path;
} load_job;

static int load_child(void *arg)
{
    aibox_signal s = {0};
    aibox_error e = {0};
    aibox_status st = aibox_signal_load(&s, ((load_job *)arg)->path, NULL, &e);
    aibox_signal_free(&s);
    return (int)st;
}

static void expect_refusal(const char *path, aibox_status want, const char *msg)
{
    aibox_signal s = {0};
    aibox_error e = {0};
    aibox_status st = aibox_signal_load(&s, path, NULL, &e);
    if (st != want || !strstr(e.msg, msg) || !strstr(e.msg, path))
        print_message("%s: status %d, \"%s\" (wanted %d, \"%s\")\n", path, (int)st, e.msg, (int)want, msg);
    assert_int_equal(st, want);
    assert_non_null(strstr(e.msg, msg));
    assert_non_null(strstr(e.msg, path));
    assert_null(s.data);
}

static void test_corrupt_and_truncated(void **state)
{
    (void)state;
    int fds = open_fds();
    char p[512];
    unsigned char buf[4096];
    aibox_rng r;
    aibox_rng_seed(&r, 12);

    /* a RIFF header, then garbage */
    memcpy(buf, "RIFF\x10\x00\x00\x00WAVE", 12);
    for (int i = 12; i < 4096; i++) buf[i] = (unsigned char)aibox_rng_u64(&r);
    path_of(p, sizeof p, "garbage.wav");
    write_bytes(p, buf, sizeof buf);
    expect_refusal(p, AIBOX_E_FORMAT, "not a sound file");

    /* empty, and absent */
    path_of(p, sizeof p, "empty.wav");
    write_bytes(p, buf, 0);
    expect_refusal(p, AIBOX_E_FORMAT, "libsndfile");
    path_of(p, sizeof p, "absent.wav");
    expect_refusal(p, AIBOX_E_NOTFOUND, "No such file");

    /* a header promising 1000000 frames over 1000 */
    wav_header(buf, 2000000);
    memset(buf + 44, 0, 2000);
    path_of(p, sizeof p, "short.wav");
    write_bytes(p, buf, 44 + 2000);
    expect_refusal(p, AIBOX_E_CORRUPT, "truncated: header says 1000000 frames, file holds 1000");

    /* a header promising 2^31 frames: over the default cap, refused before reading */
    wav_header(buf, 0xFFFFFFF0u);
    path_of(p, sizeof p, "huge.wav");
    write_bytes(p, buf, 44 + 2000);
    expect_refusal(p, AIBOX_E_UNSUPPORTED, "max_frames");

    /* RF64 promising 2^40 frames (2^41 bytes): refused, and cheaply */
    unsigned char rf[80] = {0};
    memcpy(rf, "RF64\xff\xff\xff\xffWAVEds64", 16);
    le32w(rf + 16, 28);
    le32w(rf + 20, 0xFFFFFFF0u);
    le32w(rf + 28, 0), le32w(rf + 32, 512); /* dataSize 2^41 */
    le32w(rf + 36, 0), le32w(rf + 40, 256); /* sampleCount 2^40 */
    memcpy(rf + 48, "fmt ", 4);
    le32w(rf + 52, 16);
    rf[56] = 1, rf[58] = 1;
    le32w(rf + 60, 16000);
    le32w(rf + 64, 32000);
    rf[68] = 2, rf[70] = 16;
    memcpy(buf, rf, 72);
    memcpy(buf + 72, "data\xff\xff\xff\xff", 8);
    path_of(p, sizeof p, "rf64.wav");
    write_bytes(p, buf, 80 + 2000);
    expect_refusal(p, AIBOX_E_UNSUPPORTED, "header says 1099511627776 frames");
    if (!aibox_test_emulator()) {
        load_job j = {p};
        int rc = 0;
        long kb = aibox_test_peak_kb(load_child, &j, &rc);
        assert_int_equal(rc, AIBOX_E_UNSUPPORTED);
        if (kb >= 0) assert_true(kb < 8 * 1024);
    }

    /* real files cut in half: WAV and FLAC */
    float *want = malloc(sizeof(float) * FRAMES * 3);
    const char *names[] = {"cut.wav", "cut.flac"};
    const int formats[] = {SF_FORMAT_WAV | SF_FORMAT_PCM_16, SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
    for (int k = 0; k < 2; k++) {
        path_of(p, sizeof p, names[k]);
        write_sine(p, formats[k], 16, 3, want);
        FILE *f = fopen(p, "rb");
        static unsigned char whole[1 << 16];
        size_t n = fread(whole, 1, sizeof whole, f);
        fclose(f);
        assert_true(n > 1000 && n < sizeof whole);
        write_bytes(p, whole, n / 2);
        aibox_signal s = {0};
        aibox_error e = {0};
        aibox_status st = aibox_signal_load(&s, p, NULL, &e);
        print_message("%s cut in half: %s\n", names[k], e.msg);
        assert_int_equal(st, AIBOX_E_CORRUPT);
        assert_non_null(strstr(e.msg, "header says 3001 frames"));
        assert_null(s.data);
    }
    /* a WAV cut inside a frame: 3 channels x 2 bytes, 44 + 6*1000 + 4 bytes */
    path_of(p, sizeof p, "cutframe.wav");
    write_sine(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16, 3, want);
    assert_int_equal(truncate(p, 44 + 6 * 1000 + 4), 0);
    expect_refusal(p, AIBOX_E_CORRUPT, "truncated: header says 3001 frames, file holds 1000");
    free(want);
    /* a FIFO named .wav with no writer, a folder, a device: refused at once (opening a FIFO used to wait for a
     * writer forever) */
    path_of(p, sizeof p, "fifo.wav");
    assert_int_equal(mkfifo(p, 0600), 0);
    expect_refusal(p, AIBOX_E_IO, "not a regular file");
    unlink(p);
    expect_refusal(dir, AIBOX_E_IO, "not a regular file");
    expect_refusal("/dev/null", AIBOX_E_IO, "not a regular file");
    assert_int_equal(open_fds(), fds); /* every refusal closed its file */
}

/* ------------------------------------------------------------ raw */
static FILE *pipe_of(const void *b, size_t n)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    assert_true(n < 65536); /* fits the pipe's buffer: no writer thread */
    assert_int_equal(write(fd[1], b, n), (ssize_t)n);
    close(fd[1]);
    FILE *f = fdopen(fd[0], "rb");
    assert_non_null(f);
    return f;
}

static void test_raw(void **state)
{
    (void)state;
    /* int16, 2 channels, through a pipe (no seeking, no length) */
    enum { N = 5000 };
    static unsigned char b[N * 4 + 3];
    for (int i = 0; i < N * 2; i++) {
        int16_t v = (int16_t)(i * 7 - 30000);
        b[2 * i] = (unsigned char)(v & 0xff);
        b[2 * i + 1] = (unsigned char)((uint16_t)v >> 8);
    }
    aibox_signal s = {0};
    aibox_error e = {0};
    FILE *f = pipe_of(b, N * 4);
    assert_int_equal(aibox_signal_read_raw(&s, f, "stdin", AIBOX_RAW_S16LE, 2, 8000, NULL, &e), AIBOX_OK);
    fclose(f);
    assert_int_equal(s.frames, N);
    assert_int_equal(s.channels, 2);
    assert_true(s.rate == 8000);
    for (int i = 0; i < N * 2; i++) assert_true(s.data[i] == (float)(int16_t)(i * 7 - 30000) / 32768.0f);
    aibox_signal_free(&s);
    /* channel 1 only */
    aibox_signal_opts o = {.channel = 1};
    f = pipe_of(b, N * 4);
    assert_int_equal(aibox_signal_read_raw(&s, f, "stdin", AIBOX_RAW_S16LE, 2, 8000, &o, &e), AIBOX_OK);
    fclose(f);
    assert_int_equal(s.channels, 1);
    for (int i = 0; i < N; i++) assert_true(s.data[i] == (float)(int16_t)((2 * i + 1) * 7 - 30000) / 32768.0f);
    aibox_signal_free(&s);

    /* ends mid-frame: 3 bytes over */
    f = pipe_of(b, N * 4 + 3);
    assert_int_equal(aibox_signal_read_raw(&s, f, "stdin", AIBOX_RAW_S16LE, 2, 8000, NULL, &e), AIBOX_E_CORRUPT);
    fclose(f);
    assert_non_null(strstr(e.msg, "3 bytes left over after 5000 whole frames"));
    assert_null(s.data);

    /* float32 from a file, exact; a NaN sample refused */
    float fv[6] = {0.25f, -1.5f, 3e-8f, 1e6f, -0.0f, 0.125f};
    unsigned char fb[24];
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, fv + i, 4);
        le32w(fb + 4 * i, u);
    }
    char p[512];
    path_of(p, sizeof p, "x.f32");
    write_bytes(p, fb, 24);
    assert_int_equal(aibox_signal_load_raw(&s, p, AIBOX_RAW_F32LE, 3, 100, NULL, &e), AIBOX_OK);
    assert_int_equal(s.frames, 2);
    assert_memory_equal(s.data, fv, sizeof fv);
    aibox_signal_free(&s);
    le32w(fb + 8, 0x7fc00000u);
    write_bytes(p, fb, 24);
    assert_int_equal(aibox_signal_load_raw(&s, p, AIBOX_RAW_F32LE, 3, 100, NULL, &e), AIBOX_E_FORMAT);
    assert_non_null(strstr(e.msg, "frame 0, channel 2 is not a finite number"));

    /* wrong rates, channels, formats; an empty stream */
    const double rates[] = {0, -16000, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(aibox_signal_load_raw(&s, p, AIBOX_RAW_F32LE, 1, rates[i], NULL, &e), AIBOX_E_INVALID);
        assert_non_null(strstr(e.msg, "sample rate"));
    }
    assert_int_equal(aibox_signal_load_raw(&s, p, AIBOX_RAW_F32LE, 0, 100, NULL, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_signal_load_raw(&s, p, (aibox_raw_format)7, 1, 100, NULL, &e), AIBOX_E_INVALID);
    f = pipe_of(b, 0);
    assert_int_equal(aibox_signal_read_raw(&s, f, "stdin", AIBOX_RAW_F32LE, 1, 100, NULL, &e), AIBOX_E_CORRUPT);
    fclose(f);
    assert_non_null(strstr(e.msg, "empty"));
}

static void test_stream_chunks(void **state)
{
    (void)state;
    enum { CH = 2, CHUNK = 256 };
    static unsigned char b[CHUNK * CH * 2 * 3];
    for (size_t i = 0; i < sizeof b / 2; i++) b[2 * i] = (unsigned char)i, b[2 * i + 1] = (unsigned char)(i >> 8);
    float out[CHUNK * CH];
    aibox_error e = {0};
    long got = -1;
    /* three whole chunks, then a clean end */
    FILE *f = pipe_of(b, sizeof b);
    aibox_signal_stream *st = NULL;
    assert_int_equal(aibox_signal_stream_open(&st, f, "stdin", AIBOX_RAW_S16LE, CH, 16000, CHUNK, &e), AIBOX_OK);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(aibox_signal_stream_next(st, out, &got, &e), AIBOX_OK);
        assert_int_equal(got, CHUNK);
        for (int i = 0; i < CHUNK * CH; i++) {
            size_t j = (size_t)k * CHUNK * CH + i;
            assert_true(out[i] == (float)(int16_t)(b[2 * j] | b[2 * j + 1] << 8) / 32768.0f);
        }
    }
    assert_int_equal(aibox_signal_stream_next(st, out, &got, &e), AIBOX_OK);
    assert_int_equal(got, 0);
    assert_int_equal(aibox_signal_stream_partial_bytes(st), 0);
    aibox_signal_stream_close(&st);
    assert_null(st);
    fclose(f);
    /* a stream that ends mid-window: 1 chunk, then 128 frames and 1 byte */
    f = pipe_of(b, (CHUNK + 128) * CH * 2 + 1);
    assert_int_equal(aibox_signal_stream_open(&st, f, "stdin", AIBOX_RAW_S16LE, CH, 16000, CHUNK, &e), AIBOX_OK);
    assert_int_equal(aibox_signal_stream_next(st, out, &got, &e), AIBOX_OK);
    assert_int_equal(aibox_signal_stream_next(st, out, &got, &e), AIBOX_E_CORRUPT);
    assert_int_equal(got, 128);
    assert_non_null(strstr(e.msg, "128 of 256 frames and 1 bytes"));
    assert_int_equal(aibox_signal_stream_partial_bytes(st), 1);
    aibox_signal_stream_close(&st);
    fclose(f);
    /* bad arguments */
    f = pipe_of(b, 4);
    assert_int_equal(aibox_signal_stream_open(&st, f, "stdin", AIBOX_RAW_S16LE, CH, NAN, CHUNK, &e), AIBOX_E_INVALID);
    assert_int_equal(aibox_signal_stream_open(&st, f, "stdin", AIBOX_RAW_S16LE, CH, 100, 0, &e), AIBOX_E_INVALID);
    assert_null(st);
    fclose(f);
}

/* ------------------------------------------------------------ CSV */
static void test_csv(void **state)
{
    (void)state;
    char p[512];
    aibox_signal s = {0};
    aibox_error e = {0};
    path_of(p, sizeof p, "h.csv");
    const char *text = "time, \"x\" ,y\r\n0,1.5,-2\n\n0.1,2.5,-3e-1\n0.2,3.5,4\n";
    write_bytes(p, text, strlen(text));
    assert_int_equal(aibox_signal_load_csv(&s, p, "y", 10, 0, &e), AIBOX_OK);
    assert_int_equal(s.frames, 3);
    assert_int_equal(s.channels, 1);
    assert_true(s.data[0] == -2.0f && s.data[1] == -0.3f && s.data[2] == 4.0f && s.rate == 10);
    aibox_signal_free(&s);
    assert_int_equal(aibox_signal_load_csv(&s, p, "x", 10, 0, &e), AIBOX_OK);
    assert_true(s.data[0] == 1.5f && s.data[2] == 3.5f);
    aibox_signal_free(&s);
    assert_int_equal(aibox_signal_load_csv(&s, p, "1", 10, 0, &e), AIBOX_OK);
    assert_true(s.data[1] == 2.5f);
    aibox_signal_free(&s);
    assert_int_equal(aibox_signal_load_csv(&s, p, "z", 10, 0, &e), AIBOX_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "no column named \"z\""));
    assert_int_equal(aibox_signal_load_csv(&s, p, "3", 10, 0, &e), AIBOX_E_NOTFOUND);
    assert_int_equal(aibox_signal_load_csv(&s, p, "y", 10, 2, &e), AIBOX_E_UNSUPPORTED);
    /* no header, semicolons */
    path_of(p, sizeof p, "n.csv");
    text = "1;2\n3;4\n5;6";
    write_bytes(p, text, strlen(text));
    assert_int_equal(aibox_signal_load_csv(&s, p, NULL, 5, 0, &e), AIBOX_OK);
    assert_int_equal(s.frames, 3);
    assert_true(s.data[0] == 1 && s.data[1] == 3 && s.data[2] == 5);
    aibox_signal_free(&s);
    assert_int_equal(aibox_signal_load_csv(&s, p, "x", 5, 0, &e), AIBOX_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "no header"));
    /* a bad cell, a short row, a NaN: row and column named (1-based) */
    const struct {
        const char *text, *msg;
    } bad[] = {
        {"a,b\n1,2\n3,4\n5,x7\n", "row 4, column 2: \"x7\" is not a finite number"},
        {"a,b\n1,2\n3\n", "row 3, column 2: missing"},
        {"a,b\n1,nan\n", "row 2, column 2: \"nan\""},
        {"a,b\n1,\n", "row 2, column 2: \"\""},
        {"a,b\n", "no samples"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        write_bytes(p, bad[k].text, strlen(bad[k].text));
        assert_int_equal(aibox_signal_load_csv(&s, p, "b", 5, 0, &e), AIBOX_E_FORMAT);
        if (!strstr(e.msg, bad[k].msg)) print_message("got \"%s\", wanted \"%s\"\n", e.msg, bad[k].msg);
        assert_non_null(strstr(e.msg, bad[k].msg));
        assert_null(s.data);
    }
    const double rates[] = {0, -1, NAN};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(aibox_signal_load_csv(&s, p, "b", rates[i], 0, &e), AIBOX_E_INVALID);
        assert_non_null(strstr(e.msg, "sample rate"));
    }
}

/* ------------------------------------------------------------ resampling */
/* |DFT of x[0..n) at bin k| * 2 / n: a sine's amplitude when it completes
 * whole cycles in n samples (rectangular window: no leakage). Double. */
static double dft_amp(const float *x, long n, int stride, long k)
{
    double re = 0, im = 0;
    for (long i = 0; i < n; i++) {
        double a = -2 * M_PI * (double)((k * i) % n) / n; /* exact phase: k*i reduced first */
        re += x[i * stride] * cos(a);
        im += x[i * stride] * sin(a);
    }
    return 2 * sqrt(re * re + im * im) / n;
}

static void test_resample(void **state)
{
    (void)state;
    /* 48 kHz, 2 channels: 1 kHz at 0.5 plus 11 kHz at 0.4 (above the new
     * Nyquist: it must be filtered out, not folded to 5 kHz) */
    enum { IN = 48000, OUT = 16000 };
    aibox_signal in = {0}, out = {0};
    in.frames = IN; /* one second */
    in.channels = 2;
    in.rate = IN;
    in.data = malloc(sizeof(float) * IN * 2);
    for (long i = 0; i < IN; i++) {
        double t = (double)i / IN;
        in.data[2 * i] = (float)(0.5 * sin(2 * M_PI * 1000 * t) + 0.4 * sin(2 * M_PI * 11000 * t));
        in.data[2 * i + 1] = (float)(0.5 * sin(2 * M_PI * 1000 * t));
    }
    aibox_error e = {0};
    assert_int_equal(aibox_signal_resample(&in, OUT, &out, &e), AIBOX_OK);
    assert_true(out.rate == OUT);
    assert_int_equal(out.channels, 2);
    assert_true(labs(out.frames - OUT) <= 1);
    /* the middle 0.5 s (away from the edges' transients): 8000 samples, 1 Hz bins */
    const long n = 8000, off = 4000;
    for (int c = 0; c < 2; c++) {
        const float *x = out.data + off * 2 + c;
        double a1k = dft_amp(x, n, 2, 1000 * n / OUT);
        print_message("channel %d: 1 kHz amplitude %.6f\n", c, a1k);
        assert_true(fabs(a1k - 0.5) < 1e-3);
        /* everything else (the fold of 11 kHz at 5 kHz, any leakage) below
         * -60 dB of the tone: energy of the residual after removing it */
        double ref_re = 0, ref_im = 0;
        for (long i = 0; i < n; i++) {
            double a = 2 * M_PI * (double)((1000 * i) % OUT) / OUT;
            ref_re += x[2 * i] * cos(a) * 2 / n;
            ref_im += x[2 * i] * sin(a) * 2 / n;
        }
        double resid = 0, tone = 0;
        for (long i = 0; i < n; i++) {
            double a = 2 * M_PI * (double)((1000 * i) % OUT) / OUT;
            double fit = ref_re * cos(a) + ref_im * sin(a);
            resid += (x[2 * i] - fit) * (x[2 * i] - fit);
            tone += fit * fit;
        }
        double db = 10 * log10(resid / tone);
        double a5k = dft_amp(x, n, 2, 5000 * n / OUT);
        print_message("channel %d: residual %.1f dB, 5 kHz (11 kHz folded) %.2e\n", c, db, a5k);
        assert_true(db < -60);
        assert_true(a5k < 0.5e-3);
    }
    aibox_signal_free(&out);
    /* same rate: a copy; bad rates refused */
    assert_int_equal(aibox_signal_resample(&in, IN, &out, &e), AIBOX_OK);
    assert_int_equal(out.frames, IN);
    assert_memory_equal(out.data, in.data, sizeof(float) * IN * 2);
    aibox_signal_free(&out);
    const double rates[] = {0, -1, NAN, 1};
    const aibox_status want[] = {AIBOX_E_INVALID, AIBOX_E_INVALID, AIBOX_E_INVALID, AIBOX_E_UNSUPPORTED};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(aibox_signal_resample(&in, rates[i], &out, &e), want[i]);
        assert_null(out.data);
    }
    assert_int_equal(aibox_signal_resample(&in, 0, &in, &e), AIBOX_E_INVALID);
    aibox_signal_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_roundtrip),     cmocka_unit_test(test_channel_choice),
        cmocka_unit_test(test_real_recordings),       cmocka_unit_test(test_corrupt_and_truncated),
        cmocka_unit_test(test_raw),                   cmocka_unit_test(test_stream_chunks),
        cmocka_unit_test(test_csv),                   cmocka_unit_test(test_resample),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
