#!/bin/bash
# EAP on 100 IOI pairs: one run against 4 shards merged (the scores and the circuits compared).
# Usage: bash Benchmarks/shards.sh  (results: Benchmarks/results/sharding.md is written by hand from its output)
root="$(cd "$(dirname "$0")/.." && pwd)"
B="$root/.build/release/circuits"  # build first: swift build -c release
work="$(mktemp -d)" && cd "$work"
s=$(date +%s.%N); $B discover --task ioi --method eap --edges 200 --out one --name ioi --scores-out one/scores.npy --render-timeout 0 --top 0 > one.txt 2> one.err; e=$(date +%s.%N)
echo "one run: $(echo "$e - $s" | bc) s" > summary.txt
for i in 1 2 3 4; do
  s=$(date +%s.%N); $B discover --task ioi --method eap --edges 200 --out parts --name ioi --shard $i/4 > p$i.txt 2> p$i.err; e=$(date +%s.%N)
  echo "shard $i/4: $(echo "$e - $s" | bc) s" >> summary.txt
done
s=$(date +%s.%N); $B merge parts/ioi.shard-*-of-4.json --out merged --scores-out merged/scores.npy --render-timeout 0 --top 0 > merged.txt 2> merged.err; e=$(date +%s.%N)
echo "merge: $(echo "$e - $s" | bc) s" >> summary.txt
python3 - >> summary.txt <<'PY'
import json, struct
def npy(p):
    b = open(p, 'rb').read(); hl = struct.unpack('<H', b[8:10])[0]; data = b[10 + hl:]
    return struct.unpack('<%df' % (len(data) // 4), data)
a, b = npy('one/scores.npy'), npy('merged/scores.npy')
diff = max(abs(x - y) for x, y in zip(a, b)); scale = max(abs(x) for x in a)
rel = max(abs(x - y) / max(abs(x), 1e-6 * scale) for x, y in zip(a, b))
ja, jb = json.load(open('one/ioi.json')), json.load(open('merged/ioi.json'))
same = [e['name'] for e in ja['edges']] == [e['name'] for e in jb['edges']]
print(f"edges {len(a)}; max |difference| {diff:.3g} (largest |score| {scale:.3g}); max relative {rel:.3g}")
print(f"circuit: same edges in the same order: {same}; faithfulness {ja['faithfulness']:.6f} vs {jb['faithfulness']:.6f}")
PY
cat summary.txt
