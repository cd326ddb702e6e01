#!/bin/sh
# Fault-type classification on the CWRU 12 kHz drive-end recordings (inner
# race, ball, outer race; 3 fault sizes x 4 loads, one ~10 s recording each)
# with the released tools, two protocols:
#   load   trained on the 0, 1 and 2 hp recordings (a seeded part of them,
#          by recording, for validation), tested on the 3 hp recordings: a
#          load the model never saw;
#   random every recording of every load, split by recording (25 % of each
#          class's recordings for validation, seeded): no recording has
#          windows on both sides.
# Both for the 1-D CNN on raw windows (cnn1d) and the 2-D CNN on log-mel
# (cnn2d). Prints each run's JSON summary (per-class accuracy and confusion
# matrices, window and recording level) and a table.
#   sh bench/sound_cwru.sh            (BIN=build/bin, AIBOX_DATA=../shared/data,
#                                      OUT=/tmp/sound_cwru, EPOCHS=30, SEED=1,
#                                      NETS="cnn1d cnn2d", THREADS=2)
set -e
BIN=${BIN:-build/bin}
DATA=${AIBOX_DATA:-../shared/data}/sensors/vibration-cwru
OUT=${OUT:-/tmp/sound_cwru}
EPOCHS=${EPOCHS:-30}
SEED=${SEED:-1}
NETS=${NETS:-cnn1d cnn2d}
THREADS=${THREADS:-2}
[ -f "$DATA/manifest.csv" ] || { echo "sound_cwru: no $DATA/manifest.csv" >&2; exit 2; }
[ -x "$BIN/aibox-train" ] || { echo "sound_cwru: build first (make)" >&2; exit 2; }
case $DATA in /*) ;; *) DATA=$(pwd)/$DATA ;; esac
rm -rf "$OUT" && mkdir -p "$OUT/load" "$OUT/random"
# path,cls,fault_diameter_in,load_hp,...: 12 kHz rows only
tail -n +2 "$DATA/manifest.csv" | while IFS=, read -r path cls size load rest; do
    case $path in 12k/*) ;; *) continue ;; esac
    if [ "$load" = 3 ]; then split=test; else split=train; fi
    mkdir -p "$OUT/load/$split/$cls" "$OUT/random/$cls"
    ln -s "$DATA/$path" "$OUT/load/$split/$cls/"
    ln -s "$DATA/$path" "$OUT/random/$cls/"
done
for net in $NETS; do
    echo "== $net, trained on 0-2 hp, tested on 3 hp" >&2
    "$BIN/aibox-train" sound "$OUT/load" -o "$OUT/load_$net.aibox" --net "$net" --epochs "$EPOCHS" \
        --seed "$SEED" --threads "$THREADS" --val-split 0.25 --quiet | tee "$OUT/load_$net.json"
    echo "== $net, every load, split by recording" >&2
    "$BIN/aibox-train" sound "$OUT/random" -o "$OUT/random_$net.aibox" --net "$net" --epochs "$EPOCHS" \
        --seed "$SEED" --threads "$THREADS" --val-split 0.25 --quiet | tee "$OUT/random_$net.json"
done
