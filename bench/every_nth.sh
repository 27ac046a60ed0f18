#!/bin/sh
# A subset of a scene in the ACE layout: every Nth frame of each split, as links to the
# originals (nothing is copied or changed). Used for the courtyard's photo-collection subset:
#   glace synth outdoor scenes/outdoor && bench/every_nth.sh scenes/outdoor scenes/outdoor-4th 4
set -eu
if [ $# -ne 3 ]; then
    echo "usage: $0 SCENE OUT N" >&2
    exit 2
fi
scene=$(cd "$1" && pwd)
out=$2
n=$3
case $n in '' | *[!0-9]* | 0) echo "N must be a positive integer: $n" >&2; exit 2 ;; esac
if [ -e "$out" ]; then
    echo "$out exists: name a new folder" >&2
    exit 2
fi
tmp="$out.partial-$$"
trap 'rm -rf "$tmp"' EXIT
for split in train test; do
    [ -d "$scene/$split/rgb" ] || { echo "$scene/$split/rgb: no such folder" >&2; exit 2; }
    for kind in rgb poses calibration; do
        [ -d "$scene/$split/$kind" ] || continue
        mkdir -p "$tmp/$split/$kind"
    done
    k=0
    for image in "$scene/$split/rgb"/*; do
        if [ $((k % n)) -eq 0 ]; then
            stem=$(basename "$image")
            stem=${stem%.*}
            for kind in rgb poses calibration; do
                for f in "$scene/$split/$kind/$stem".*; do
                    [ -e "$f" ] && ln -s "$f" "$tmp/$split/$kind/"
                done
            done
        fi
        k=$((k + 1))
    done
done
mv "$tmp" "$out"
trap - EXIT
