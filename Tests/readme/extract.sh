#!/usr/bin/env bash
# Writes each fenced code block of a Markdown file that names its language to a file of its own,
# verbatim, numbered in order of appearance: 01.c, 02.sh, 03.python, ...
#   Tests/readme/extract.sh README.md OUTDIR
# (the snippet tests run what the README shows, exactly as a reader would paste it).
set -euo pipefail
markdown=${1:?Markdown file}
out=${2:?output folder}
mkdir -p "$out"
awk -v out="$out" '
    !inside && /^```[A-Za-z0-9_+-]+[ \t]*$/ {
        inside = 1; count++
        lang = substr($0, 4); sub(/[ \t]+$/, "", lang)
        file = sprintf("%s/%02d.%s", out, count, lang)
        printf "" > file
        next
    }
    inside && /^```[ \t]*$/ { inside = 0; close(file); next }
    inside { print > file }
    END { if (inside) { print "extract: unterminated code block in " FILENAME > "/dev/stderr"; exit 1 } }
' "$markdown"
