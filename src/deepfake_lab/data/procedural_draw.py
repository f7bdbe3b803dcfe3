"""Drawing of the built-in procedural cartoon faces (see :mod:`deepfake_lab.data.procedural`).

Each face is drawn with OpenCV at 4x the target size with anti-aliased primitives, then
shrunk with INTER_AREA. The person (hair, neck, clothes, head) is drawn on a black canvas
together with a coverage mask, so after shrinking it is premultiplied colour + alpha; it is
lit by a directional light (Lambert shading on a head-shaped sphere) and composited over a
background drawn at the final size (gradients, blotches, grain).

Framing mimics aligned face sets: the face centred, the eyes level at about 0.4 of the
height, margin above the hair. :func:`render_one` draws one face from its own random
generator alone.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

GENERATOR_VERSION = 1  # bump when the drawing changes: cached folders are then redrawn

SUPERSAMPLE = 4
_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel coordinates on the 4x canvas
_AA = cv2.LINE_AA

# fmt: off
_SKIN = np.array([(255, 226, 204), (246, 208, 180), (236, 190, 158), (222, 170, 134),
                  (200, 142, 104), (172, 114, 80), (138, 88, 60), (104, 66, 46), (74, 48, 36)],
                 np.float64)
# black, browns, auburn, ginger, blond, platinum, grey, white, then a few dyed colours
_HAIR = np.array([(24, 20, 20), (48, 34, 26), (82, 54, 36), (124, 86, 56), (120, 50, 28),
                  (184, 92, 44), (214, 178, 112), (232, 220, 190), (160, 158, 156),
                  (222, 222, 222), (52, 88, 190), (222, 110, 170), (120, 64, 170), (48, 150, 110)],
                 np.float64)
_HAIR_P = np.array([16, 16, 16, 10, 6, 6, 9, 4, 5, 3, 2, 2, 2, 1], np.float64)
# brown, dark brown, hazel, green, blue, grey, amber
_IRIS = np.array([(96, 58, 30), (58, 34, 20), (130, 102, 48), (76, 124, 68), (64, 116, 186),
                  (112, 128, 146), (164, 104, 32)], np.float64)
_IRIS_P = np.array([30, 22, 12, 10, 14, 8, 4], np.float64)
_STYLES = ["short", "bangs", "bob", "long", "curly", "bun", "ponytail", "buzz", "bald", "spiky"]
_STYLE_P = np.array([17, 11, 12, 19, 10, 7, 7, 6, 3, 7], np.float64)
_EXPRS = ["neutral", "smile", "grin", "open", "surprised", "frown"]
_EXPR_P = np.array([0.25, 0.3, 0.2, 0.08, 0.07, 0.1])
_LIPSTICK = np.array([(180, 20, 40), (200, 60, 110), (120, 30, 60)], np.float64)
_FRAMES = np.array([(20, 20, 20), (120, 80, 40), (190, 170, 120)], np.float64)
# fmt: on


def _pick(rng: np.random.Generator, table: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
    """A palette entry with a little jitter."""
    i = rng.choice(len(table), p=None if p is None else p / p.sum())
    return table[i] + rng.normal(0, 6, 3)


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t


def _col(c) -> tuple[float, float, float]:
    r, g, b = (min(max(float(v), 0.0), 255.0) for v in c)
    return (r, g, b)


def _ellipse_pts(cx, cy, rx, ry, t0=0.0, t1=2 * np.pi, n=48) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _band(xs, y_top, y_bottom) -> np.ndarray:
    """The polygon between two curves over the same xs (lips, brows, teeth)."""
    return np.concatenate([np.stack([xs, y_top], 1), np.stack([xs, y_bottom], 1)[::-1]])


class _Painter:
    """Draws in normalised coordinates ([0, 1] of the image side) on the 4x canvas.

    ``solid`` shapes form the person's silhouette and also go into the coverage mask;
    details drawn inside a silhouette (eyes, mouth, ...) need not.
    """

    def __init__(self, size: int) -> None:
        self.s = size * SUPERSAMPLE
        self.rgb = np.zeros((self.s, self.s, 3), np.uint8)
        self.mask = np.zeros((self.s, self.s), np.uint8)

    def _fx(self, pts) -> np.ndarray:
        return np.round(np.asarray(pts, np.float64) * self.s * (1 << _SHIFT)).astype(np.int32)

    def poly(self, pts, color, solid: bool = False) -> None:
        """Fill a polygon; a list of polygons fills even-odd (the second one is a hole)."""
        polys = [self._fx(p) for p in (pts if isinstance(pts, list) else [pts])]
        cv2.fillPoly(self.rgb, polys, _col(color), _AA, _SHIFT)
        if solid:
            cv2.fillPoly(self.mask, polys, 255, _AA, _SHIFT)

    def ellipse(self, c, axes, color, solid: bool = False, angle: float = 0.0) -> None:
        args = (tuple(self._fx(c)), tuple(self._fx(axes)), angle, 0, 360)
        cv2.ellipse(self.rgb, *args, _col(color), -1, _AA, _SHIFT)
        if solid:
            cv2.ellipse(self.mask, *args, 255, -1, _AA, _SHIFT)

    def line(self, pts, color, width: float, closed: bool = False) -> None:
        w = max(1, round(width * self.s))
        cv2.polylines(self.rgb, [self._fx(pts)], closed, _col(color), w, _AA, _SHIFT)


@dataclass
class Face:
    """Sampled geometry and colours; lengths are fractions of the image side."""

    skin: np.ndarray
    hair: np.ndarray
    style: str
    cx: float  # face centre x
    ey: float  # eye line
    fw: float  # face half-width
    fh: float  # face half-height below the head centre
    hcy: float  # head centre y
    top: float  # top of the skull
    yaw: float  # sideways shift of the features: a slightly turned head

    @property
    def chin(self) -> float:
        return self.hcy + self.fh


def sample_face(rng: np.random.Generator) -> Face:
    t = rng.uniform(0, len(_SKIN) - 1)
    skin = _mix(_SKIN[int(t)], _SKIN[min(int(t) + 1, len(_SKIN) - 1)], t % 1)
    skin = skin + rng.normal(0, 5, 3) + rng.uniform(-6, 6) * np.array([1, 0, -1])  # undertone
    hair = _pick(rng, _HAIR, _HAIR_P)
    style = _STYLES[rng.choice(len(_STYLES), p=_STYLE_P / _STYLE_P.sum())]
    cx, ey = 0.5 + rng.normal(0, 0.006), 0.40 + rng.normal(0, 0.006)
    fw = rng.uniform(0.2, 0.25)
    fh = fw * rng.uniform(1.15, 1.35)
    hcy = ey + rng.uniform(0.015, 0.045)
    top = hcy - fh * rng.uniform(1.0, 1.08)
    return Face(skin, hair, style, cx, ey, fw, fh, hcy, top, rng.normal(0, 0.012))


def _draw_body(p: _Painter, rng: np.random.Generator, f: Face) -> tuple[dict, float]:
    """Hair behind the head, neck, clothes, front strands; returns hair lengths, neck width."""
    cx, fw, hcy, hair_dark = f.cx, f.fw, f.hcy, _mix(f.hair, (0, 0, 0), 0.35)
    hair_len = {"long": rng.uniform(0.78, 1.05), "bob": f.chin - rng.uniform(0.0, 0.05)}
    if f.style in hair_len:
        hw, bottom = fw * rng.uniform(1.18, 1.4), hair_len[f.style]
        arc = _ellipse_pts(cx, hcy, hw, hcy - f.top + 0.03, np.pi, 2 * np.pi)
        corners = [[cx + hw * 1.05, bottom], [cx - hw * 1.05, bottom]]
        p.poly(np.concatenate([arc, corners]), hair_dark, solid=True)
    elif f.style == "ponytail":
        s = rng.choice([-1, 1])
        p.ellipse((cx + s * fw * 1.05, hcy + 0.05), (0.06, 0.17), hair_dark, True, s * -15.0)
    nw = fw * rng.uniform(0.42, 0.55)
    neck_c = _mix(f.skin, (0, 0, 0), 0.12)
    neck = [[cx - nw, hcy], [cx + nw, hcy], [cx + nw * 1.12, 1.02], [cx - nw * 1.12, 1.02]]
    p.poly(np.array(neck), neck_c, solid=True)
    cloth = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.8), rng.uniform(0.1, 0.9))
    sh_top = rng.uniform(0.86, 0.93)
    p.ellipse((cx, sh_top + 0.2), (rng.uniform(0.36, 0.5), 0.21), np.array(cloth) * 255, True)
    if rng.uniform() < 0.6:  # a V neckline
        v = [[cx - nw * 1.1, sh_top - 0.01], [cx + nw * 1.1, sh_top - 0.01]]
        p.poly(np.array([*v, [cx, sh_top + rng.uniform(0.03, 0.08)]]), neck_c, solid=True)
    if f.style == "long":  # strands falling in front of the shoulders
        for s in (-1, 1):
            x0, y1 = cx + s * fw * 0.92, hair_len["long"]
            strand = [[x0, hcy - 0.05], [x0 + s * fw * 0.4, hcy - 0.05]]
            strand += [[x0 + s * fw * 0.45, y1], [x0 + s * 0.01, y1]]
            p.poly(np.array(strand), f.hair, solid=True)
    return hair_len, nw


def _draw_head(p: _Painter, rng: np.random.Generator, f: Face, nw: float) -> np.ndarray:
    """Ears, the jaw's shadow and the face; returns the face outline (72, 2)."""
    cx, fw, shade = f.cx, f.fw, _mix(f.skin, (40, 20, 30), 0.22)
    ear_y = f.ey + rng.uniform(0.03, 0.06)
    for s in (-1, 1):
        p.ellipse((cx + s * fw * 0.97, ear_y), (fw * 0.17, fw * 0.28), shade, solid=True)
        p.ellipse((cx + s * fw, ear_y), (fw * 0.07, fw * 0.16), _mix(shade, (0, 0, 0), 0.2))
    # An ellipse whose lower half narrows into a jaw (pointed to square chins).
    th = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    sn = np.sin(th)
    jaw, jpow = rng.uniform(0.0, 0.3), rng.uniform(1.3, 3.0)
    g = np.where(sn > 0, 1 - jaw * np.abs(sn) ** jpow, 1 - rng.uniform(0, 0.08) * sn**2)
    ry = np.where(sn > 0, f.fh, f.hcy - f.top)
    face = np.stack([cx + fw * np.cos(th) * g, f.hcy + ry * sn], 1)
    # The jaw's shadow on the neck: the outline shifted down, under the face, clipped to the
    # neck (outside any silhouette it would glow over the background).
    shadow = face + [0, rng.uniform(0.015, 0.03)]
    shadow[:, 0] = np.clip(shadow[:, 0], cx - nw, cx + nw)
    p.poly(shadow, _mix(f.skin, (30, 10, 20), 0.3))
    p.poly(face, f.skin, solid=True)
    return face


def _draw_eye(p: _Painter, rng, ex, ey, ew, eh, side, tilt, iris, skin, gaze, lid) -> None:
    x = np.linspace(-1, 1, 17)
    xs, dy = ex + side * x * ew, -tilt * eh * x  # the outer corner sits higher
    upper = np.stack([xs, ey - eh * (1 - x**2) ** 0.7 * lid + dy], 1)
    lower = np.stack([xs, ey + eh * 0.75 * (1 - x**2) ** 0.9 + dy], 1)
    almond = np.concatenate([upper, lower[::-1]])
    p.poly(almond, (244, 242, 236))
    ir = ew * rng.uniform(0.42, 0.55)
    ic = (ex + gaze[0] * ew, ey + gaze[1] * eh)
    p.ellipse(ic, (ir, ir), iris)
    p.ellipse(ic, (ir * 0.62, ir * 0.62), _mix(iris, (255, 255, 255), 0.25))
    p.ellipse(ic, (ir * 0.42, ir * 0.42), (12, 10, 12))
    p.ellipse((ic[0] - ir * 0.35, ic[1] - ir * 0.35), (ir * 0.18, ir * 0.18), (250, 250, 250))
    # A skin-coloured ring with the almond as its hole clips the iris to the eye opening.
    p.poly([_ellipse_pts(ex, ey, ew * 1.25, max(eh, ir) * 1.6), almond], skin)
    p.line(upper, _mix(skin, (20, 14, 14), 0.75), rng.uniform(0.006, 0.011))  # lid, lashes
    fold = _mix(skin, (60, 30, 30), 0.3)
    p.line(lower[2:-2], fold, 0.003)
    if rng.uniform() < 0.6:  # lid crease
        p.line(upper[3:-2] + [0, -eh * rng.uniform(0.45, 0.8)], fold, 0.003)


def _draw_features(p: _Painter, rng: np.random.Generator, f: Face, face: np.ndarray) -> float:
    """Eyes, brows, nose, beard, mouth, glasses; returns the eye half-height."""
    cx, ey, fw, yaw, skin = f.cx, f.ey, f.fw, f.yaw, f.skin
    expr = str(rng.choice(_EXPRS, p=_EXPR_P))
    ex, ew = fw * rng.uniform(0.4, 0.5), fw * rng.uniform(0.2, 0.26)
    eh = ew * rng.uniform(0.42, 0.68) * (1.25 if expr == "surprised" else 1.0)
    tilt, iris = rng.uniform(-0.1, 0.35), _pick(rng, _IRIS, _IRIS_P)
    gaze = (rng.normal(0, 0.12) + yaw * 6, rng.normal(0, 0.08))
    lid = rng.uniform(0.75, 1.0) * (0.85 if expr in ("smile", "grin") else 1.0)
    brow_c = _mix(_mix(f.hair, (0, 0, 0), 0.35), (40, 30, 25), 0.3 if f.hair.mean() > 120 else 0)
    brow_lift = {"surprised": 0.025, "frown": -0.008}.get(expr, 0.0)
    bthick, barch = rng.uniform(0.006, 0.016), rng.uniform(0.0, 0.02)
    for s in (-1, 1):
        x0 = cx + yaw + s * ex
        _draw_eye(p, rng, x0, ey, ew, eh, s, tilt, iris, skin, gaze, lid)
        x = np.linspace(-1, 1, 12)
        by = ey - eh - rng.uniform(0.028, 0.034) - brow_lift - barch * (1 - x**2)
        if expr == "frown":
            by = by + 0.012 * (1 - x) / 2  # the inner ends pulled down
        thick = bthick * (1.15 - 0.25 * (x + 1))  # tapering outwards
        p.poly(_band(x0 + s * x * ew * 1.15, by - thick / 2, by + thick / 2), brow_c)

    ny, nwid = ey + rng.uniform(0.1, 0.14), fw * rng.uniform(0.14, 0.22)
    nose_c = _mix(skin, (50, 20, 20), 0.3)
    base = _ellipse_pts(cx + yaw * 1.6, ny - nwid * 0.2, nwid, nwid * 0.55, 0.25, np.pi - 0.25, 12)
    p.line(base, nose_c, 0.005)
    bx = cx + yaw * 1.3 + nwid * 0.6 * rng.choice([-1, 1])  # one side of the bridge
    p.line(np.array([[bx, ey + 0.03], [bx, ny - nwid * 0.5]]), _mix(skin, nose_c, 0.5), 0.004)

    my = ny + rng.uniform(0.06, 0.085)
    mw = fw * rng.uniform(0.3, 0.45) * (0.7 if expr == "surprised" else 1.0)
    lip = _mix(skin, (196, 70, 86), rng.uniform(0.3, 0.55))
    if rng.uniform() < 0.15:
        lip = _pick(rng, _LIPSTICK)
    curve = {"smile": 0.018, "grin": 0.022, "frown": -0.012, "open": 0.01}.get(expr, 0.004)
    opening = {"grin": 0.022, "open": 0.035, "surprised": 0.04}.get(expr, 0.0)
    beard = rng.uniform() < 0.12
    if beard:  # the jaw outline, closed by a curve under the cheeks and around the mouth
        inner = [[cx - fw * 0.85, ey + 0.1], [cx - mw * 1.3, my - 0.015]]
        inner += [
            [cx, my + 0.035 + opening],
            [cx + mw * 1.3, my - 0.015],
            [cx + fw * 0.85, ey + 0.1],
        ]
        jaw = face[np.sin(np.linspace(0, 2 * np.pi, len(face), endpoint=False)) > 0.05]
        p.poly(np.concatenate([jaw, inner]), f.hair, solid=True)
    x = np.linspace(-1, 1, 21)
    mx = cx + yaw * 1.5 + x * mw
    mid = my + curve * (1 - x**2) - curve * 0.4  # the line between the lips
    bow = 0.006 * np.exp(-((np.abs(x) - 0.25) ** 2) / 0.03)  # the cupid's bow
    up_lip = mid - (opening * 0.4 + rng.uniform(0.008, 0.013)) * (1 - x**2) ** 0.6 - bow
    lo_lip = mid + (opening + rng.uniform(0.012, 0.02)) * (1 - x**2) ** 0.7
    p.poly(_band(mx, up_lip, lo_lip), lip)
    if opening > 0:
        top_in = mid - opening * 0.3 * (1 - x**2) ** 0.6
        bot_in = mid + opening * (1 - x**2) ** 0.7
        p.poly(_band(mx, top_in, bot_in), (70, 18, 26))
        if expr in ("grin", "open"):
            p.poly(_band(mx, top_in, np.minimum(top_in + opening * 0.45, bot_in)), (238, 236, 226))
    else:
        p.line(np.stack([mx, mid], 1)[1:-1], _mix(lip, (40, 0, 10), 0.5), 0.004)
    if beard and rng.uniform() < 0.7:  # moustache
        p.poly(_band(mx, up_lip - 0.02 + 0.01 * x**2, up_lip - 0.004), f.hair)

    if rng.uniform() < 0.14:  # glasses, under the hair that follows
        frame = _pick(rng, _FRAMES)
        r = ew * rng.uniform(1.35, 1.6)
        for s in (-1, 1):
            gx = cx + yaw + s * ex
            p.line(_ellipse_pts(gx, ey + 0.004, r, r * rng.uniform(0.7, 0.9)), frame, 0.006, True)
            p.line(np.array([[gx + s * r, ey], [cx + s * fw * 0.97, ey - 0.005]]), frame, 0.006)
        p.line(np.array([[cx + yaw - ex + r, ey], [cx + yaw + ex - r, ey]]), frame, 0.006)
    return eh


def _hair_cap(cx, top, hw, side_y, hairline_y, part, n=40) -> np.ndarray:
    """The hair over the skull: an arc over the top, then the hairline across the forehead."""
    t = np.linspace(np.pi + 0.25, 2 * np.pi - 0.25, n)
    arc = np.stack([cx + hw * np.cos(t), side_y + (side_y - top) * np.sin(t)], 1)
    arc[0, 1] = arc[-1, 1] = side_y
    x = np.linspace(1, -1, n)  # back across the forehead, right to left
    # flat over the forehead, dropping smoothly to side_y at the temples
    u = np.clip((np.abs(x) - 0.55) / 0.3, 0, 1)
    drop = u * u * (3 - 2 * u)
    y = hairline_y + (side_y - hairline_y) * drop
    y = y - part * 0.05 * np.clip(x * np.sign(part) + 0.3, 0, None) * (1 - drop)  # side part
    line = np.stack([cx + x * hw * 0.98, np.minimum(y, side_y)], 1)
    return np.concatenate([arc, line])


def _draw_hair(p: _Painter, rng, f: Face, eh: float, hair_len: dict) -> None:
    """Hair over the head: the cap with its hairline plus the style's extra shapes."""
    cx, ey, fw, top, hair, style = f.cx, f.ey, f.fw, f.top, f.hair, f.style
    hw = fw * rng.uniform(1.06, 1.14)
    side_y = ey + rng.uniform(-0.03, 0.02)
    hairline = ey - rng.uniform(0.1, 0.17)
    part = rng.uniform(-1, 1) * (rng.uniform() < 0.6)
    if style == "bangs":
        hairline = ey - eh - rng.uniform(0.04, 0.06)
    if style in ("bun", "buzz"):
        part, hairline = 0.0, ey - rng.uniform(0.15, 0.19)
    if style == "bun":
        p.ellipse((cx, top - 0.03), (0.065, 0.055), _mix(hair, (0, 0, 0), 0.35), solid=True)
    if style == "curly":
        for a in np.linspace(np.pi * 0.95, np.pi * 2.05, 13):
            r = rng.uniform(0.05, 0.075)
            c = (cx + hw * 1.05 * np.cos(a), side_y + (side_y - top + 0.02) * np.sin(a))
            p.ellipse(c, (r, r), hair, solid=True)
    if style == "spiky":
        for a in np.linspace(np.pi * 1.1, np.pi * 1.9, 7):
            b = np.array([np.cos(a), np.sin(a)])
            c = np.array([cx, side_y]) + b * [hw, side_y - top]
            nrm = np.array([-b[1], b[0]]) * 0.04
            p.poly(np.array([c - nrm, c + b * rng.uniform(0.04, 0.08), c + nrm]), hair, True)
    if style in ("bob", "long"):
        for s in (-1, 1):  # curtains over the sides of the face
            edge = cx + s * fw * rng.uniform(0.78, 0.9)
            end = hair_len["bob"] if style == "bob" else f.chin
            cur = [[cx + s * hw, side_y - 0.05], [edge, side_y - 0.05]]
            cur += [[edge + s * 0.01, f.chin - 0.06], [cx + s * hw * 1.05, end]]
            p.poly(np.array(cur), hair, solid=True)
    if style == "bald":
        return
    cap = _hair_cap(cx, top - rng.uniform(0.01, 0.035), hw, side_y, hairline, part)
    p.poly(cap, _mix(f.skin, hair, 0.7) if style == "buzz" else hair, solid=True)
    if style in ("buzz", "spiky"):
        return
    dark, light = _mix(hair, (0, 0, 0), 0.35), _mix(hair, (255, 255, 255), 0.25)
    for _ in range(int(rng.integers(4, 9))):  # strands and a sheen
        x0 = rng.uniform(-0.7, 0.7)
        xs = cx + hw * np.linspace(x0 * 0.4, x0, 6)
        pts = np.stack([xs, np.linspace(top + 0.02, hairline - 0.01, 6)], 1)
        p.line(pts, dark if rng.uniform() < 0.7 else light, 0.004)


def _background(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Float (size, size, 3) in [0, 255]: a gradient between two colours plus texture."""
    size = xx.shape[0]
    h = rng.uniform()
    c1 = colorsys.hsv_to_rgb(h, rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.95))
    h2 = (h + rng.choice([rng.uniform(-0.08, 0.08), rng.uniform(0.3, 0.7)])) % 1
    c2 = colorsys.hsv_to_rgb(h2, rng.uniform(0.05, 0.6), rng.uniform(0.2, 0.95))
    kind = rng.integers(3)
    if kind == 0:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5) + 0.5
    elif kind == 1:  # radial: a lit backdrop behind the head
        t = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5 + rng.uniform(-0.2, 0.2)) ** 2) * 1.4
    else:  # soft blotches, like an out-of-focus room
        k = int(rng.integers(2, 7))
        blotch = rng.uniform(0, 1, (k, k)).astype(np.float32)
        t = cv2.resize(blotch, (size, size), interpolation=cv2.INTER_CUBIC)
    t = np.clip(t, 0, 1)[..., None]
    bg = (np.array(c1) * (1 - t) + np.array(c2) * t) * 255
    if rng.uniform() < 0.5:  # grain or texture
        k = int(rng.integers(8, size // 2 + 1))
        noise = cv2.resize(rng.normal(0, 1, (k, k)).astype(np.float32), (size, size))
        bg = bg + noise[..., None] * rng.uniform(2, 7)
    return bg.astype(np.float32)


def render_one(rng: np.random.Generator, size: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """One face, uint8 (size, size, 3); xx, yy: pixel-centre coordinates in [0, 1]."""
    p = _Painter(size)
    f = sample_face(rng)
    hair_len, nw = _draw_body(p, rng, f)
    face = _draw_head(p, rng, f, nw)
    eh = _draw_features(p, rng, f, face)
    _draw_hair(p, rng, f, eh, hair_len)

    # Shrink colour and coverage together: the colour is then premultiplied by coverage.
    person = cv2.resize(p.rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(p.mask, (size, size), interpolation=cv2.INTER_AREA)[..., None] / 255.0
    # Lambert shading with the head as a sphere, blending into flat shading outside it.
    az, el = rng.uniform(-np.pi * 0.95, -np.pi * 0.05), rng.uniform(0.3, 1.0)  # from above
    light = np.array([np.cos(az) * np.sin(el), np.sin(az) * np.sin(el), np.cos(el)])
    nx, ny = (xx - f.cx) / (f.fw * 1.15), (yy - f.hcy) / (f.fh * 1.1)
    r = np.sqrt(nx**2 + ny**2)
    edge = np.maximum(r, 1.0)  # beyond the sphere, continue its rim normal
    nz = np.sqrt(np.clip(1 - r**2, 0, None))
    lambert = np.clip(nx / edge * light[0] + ny / edge * light[1] + nz * light[2], 0, None)
    w = np.clip((1.3 - r) / 0.4, 0, 1)
    ambient = rng.uniform(0.35, 0.55)
    lit = ambient + (1 - ambient) * (w * lambert + (1 - w) * light[2]) / max(light[2], 0.6)
    tint = 1 + rng.normal(0, 0.03, 3) * [1, 0.3, -1]  # a warm or cool light
    person = person * (lit[..., None] * tint).astype(np.float32)
    bg = _background(rng, xx, yy)
    bg = bg * (1 + 0.15 * ((xx - 0.5) * light[0] + (yy - 0.5) * light[1]))[..., None]
    out = person + bg * (1 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
