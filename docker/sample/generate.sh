#!/bin/sh
# Seeds the log file with the sample lines, then appends one logfmt access-log line every
# half second so Explore's live tail and the volume histogram have fresh data.
out="$1"
mkdir -p "$(dirname "$out")"
cat /sample/shop.log >> "$out"
while true; do
  case $((RANDOM % 10)) in
    0) level=error status=500 ;;
    1|2) level=warn status=429 ;;
    3) level=debug status=200 ;;
    *) level=info status=200 ;;
  esac
  case $((RANDOM % 5)) in
    0) path=/api/cart ;;
    1) path=/api/checkout ;;
    2) path=/api/products ;;
    3) path=/api/login ;;
    *) path=/healthz ;;
  esac
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  echo "ts=$now level=$level method=GET path=$path status=$status duration=$((RANDOM % 900 + 5))ms msg=\"request served\"" >> "$out"
  sleep 0.5
done
