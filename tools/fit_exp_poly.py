"""Minimax fit of e^r ~ 1 + r + r^2 (c2 + c3 r + ... + cd r^(d-2)) on |r| <= ln2/2.

With `--table K` the interval is |r| <= ln2/(2K) (the reduced argument of a table of
2^(j/K)): `python3 tools/fit_exp_poly.py 3 --table 8` gives the f32 table form's c2, c3.

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

def lawson(deg, h):
    """Minimax by Lawson's iteration (reweighted least squares) on a grid: the table form's
    error has a double zero at r = 0 (c1 = 1), where the exchange above does not converge."""
    k = deg - 1
    grid = [-h + 2 * h * i / 4000 for i in range(4001)]
    rows = [[math.exp(-r) * r ** (j + 2) for j in range(k)] for r in grid]
    rhs = [1 - math.exp(-r) * (1 + r) for r in grid]
    w = [1.0] * len(grid)
    for _ in range(600):
        a = [[sum(wi * row[i] * row[j] for wi, row in zip(w, rows)) for j in range(k)] for i in range(k)]
        b = [sum(wi * row[i] * y for wi, row, y in zip(w, rows, rhs)) for i in range(k)]
        c = solve(a, b)
        e = [abs(sum(ci * x for ci, x in zip(c, row)) - y) for row, y in zip(rows, rhs)]
        total = sum(wi * ei for wi, ei in zip(w, e))
        w = [wi * ei / total for wi, ei in zip(w, e)]
    return c


def main(deg, table=1):
    h = math.log(2) / (2 * table)
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
    if table > 1:
        c = lawson(deg, h)
    cr = [f32(x) for x in c]
    worst = max(abs(err(cr, r)) for r in grid)
    print(f"degree {deg}: max relative error {worst:.3e} ({worst / 2**-24:.3f} half-ULPs at 1)")
    for j, x in enumerate(cr):
        print(f"c{j + 2} = {x!r}  # {x.hex()}")

args = sys.argv[1:]
table = 1
if "--table" in args:
    i = args.index("--table")
    table = int(args[i + 1])
    del args[i : i + 2]
main(int(args[0]) if args else 6, table)
