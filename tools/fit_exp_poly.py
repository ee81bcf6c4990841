"""Minimax fit of e^r ~ 1 + r + r^2 (c2 + c3 r + ... + cd r^(d-2)) on |r| <= ln2/2.

Minimises the maximum relative error with the Remez exchange on a dense grid, in float64
(ample for f32 coefficients). Prints the coefficients rounded to f32 and the error of the
rounded polynomial. Used to derive the f32 constants in src/simd/real.rs:

    python3 tools/fit_exp_poly.py 6
"""
import math, sys

def solve(a, b):
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    return [m[i][n] / m[i][i] for i in range(n)]

def f32(x):
    import struct
    return struct.unpack('f', struct.pack('f', x))[0]

def main(deg):
    h = math.log(2) / 2
    k = deg - 1  # unknowns c2..cd
    grid = [-h + 2 * h * i / 20000 for i in range(20001)]
    err = lambda c, r: (1 + r + r * r * sum(ci * r ** j for j, ci in enumerate(c))) / math.exp(r) - 1
    nodes = [h * math.cos(math.pi * (k - i) / k) for i in range(k + 1)]
    for _ in range(30):
        rows, rhs = [], []
        for i, r in enumerate(nodes):
            # r^2 sum c_j r^j - E (-1)^i e^r = e^r - 1 - r
            rows.append([r ** (j + 2) for j in range(k)] + [-((-1) ** i) * math.exp(r)])
            rhs.append(math.exp(r) - 1 - r)
        sol = solve(rows, rhs)
        c = sol[:k]
        # exchange: one extremum per sign run of the error on the grid
        e = [err(c, r) for r in grid]
        runs, cur = [], [0]
        for i in range(1, len(grid)):
            if (e[i] >= 0) == (e[cur[0]] >= 0):
                cur.append(i)
            else:
                runs.append(cur)
                cur = [i]
        runs.append(cur)
        ext = [max(run, key=lambda i: abs(e[i])) for run in runs]
        ext = sorted(ext, key=lambda i: -abs(e[i]))[: k + 1]
        nodes = sorted(grid[i] for i in ext)
    cr = [f32(x) for x in c]
    worst = max(abs(err(cr, r)) for r in grid)
    print(f"degree {deg}: max relative error {worst:.3e} ({worst / 2**-24:.3f} half-ULPs at 1)")
    for j, x in enumerate(cr):
        print(f"c{j + 2} = {x!r}  # {x.hex()}")

main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
