#!/usr/bin/env python3
"""Reproducible generator of benign originals and their adapted re-uploads.

Usage: python3 bench/robust/generate.py OUT_DIR [--max-originals N] [--seed S]

--seed S (default 0, the documented run): a second, independent draw of the
same benchmark. The originals are shuffled (so `--every N` scores a
different subset of them) and every random edit parameter (pad colours,
random crops, caption and overlay texts) is drawn from other streams.
Seed 0 writes exactly the files it always wrote.

Originals: every benign natural image available offline (scikit-image data,
scikit-learn sample images, matplotlib sample data, perception's bundled
photos, ../shared/fixtures/pdq, one frame per clip of ../shared/fixtures/vpdq,
Debian wallpaper packages under /usr/share/wallpapers and
/usr/share/backgrounds). Large photos (>= 1600 px on the short... long side)
also give their four quadrants as further originals (tiles of one photo never
overlap; pairs of tiles of one parent are left out of the unrelated pairs by
the harness through the `group` column). Originals are scaled to at most
ORIG_MAX px on the long side and written as PNG.

Edits (one JPEG q90 per original and class unless the class says otherwise)
are listed in CLASSES; augly is used where it has the edit. Everything is
seeded, so a re-run writes identical files.

Writes OUT_DIR/originals/*.png, OUT_DIR/queries/<class>/*.jpg and
OUT_DIR/manifest.csv (kind,class,path,original,group).
"""
import csv
import glob
import hashlib
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

ORIG_MAX = 768
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "fixtures"))


def to_rgb(arr):
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        a = ((a - lo) / (hi - lo + 1e-9) * 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3:
        return None
    return Image.fromarray(a)


def collect():
    """(name, group, PIL image) of every source image."""
    out = []
    try:
        import skimage.data as d

        for name in d.__all__:
            if name in ("data_dir", "download_all", "file_hash", "lbp_frontal_face_cascade_filename",
                        "binary_blobs", "checkerboard", "shepp_logan_phantom", "logo", "page", "text",
                        "colorwheel", "cells3d", "lfw_subset", "stereo_motorcycle", "vortex", "brain",
                        "kidney", "protein_transport", "nickel_solidification", "human_mitosis"):
                continue
            try:
                im = to_rgb(getattr(d, name)())
            except Exception:
                continue
            if im is not None and min(im.size) >= 128:
                out.append((f"skimage-{name}", f"skimage-{name}", im))
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        for i, a in enumerate(load_sample_images().images):
            out.append((f"sklearn-{i}", f"sklearn-{i}", to_rgb(a)))
    except Exception:
        pass
    try:
        import matplotlib

        p = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
        for f in ("grace_hopper.jpg",):
            out.append((f"mpl-{f}", f"mpl-{f}", Image.open(os.path.join(p, f)).convert("RGB")))
    except Exception:
        pass
    try:
        import perception

        for f in sorted(glob.glob(os.path.join(os.path.dirname(perception.__file__), "testing", "images", "*.jpg"))):
            out.append((f"perception-{os.path.basename(f)}", f"perception-{os.path.basename(f)}", Image.open(f).convert("RGB")))
    except Exception:
        pass
    pdq = os.path.join(FIXTURES, "pdq", "images")
    for rel in ["bridge-mods/aaa-orig.jpg", "exif-rotn/exif-rotn-1.jpg", "modes/original.jpg",
                "misc/pen-and-coaster.png", "misc/rgb.jpeg"] + [
        "labelme/" + os.path.basename(f) for f in sorted(glob.glob(os.path.join(pdq, "labelme", "*.jpg")))
    ]:
        f = os.path.join(pdq, rel)
        if os.path.exists(f):
            out.append((f"fixture-{rel.replace('/', '-')}", f"fixture-{rel}", Image.open(f).convert("RGB")))
    vids = os.path.join(FIXTURES, "vpdq", "videos")
    for clip, at in [("chair-orig-22-sd-bar.mp4", 5), ("pattern-hd-no-bar.mp4", 3), ("doorknob-hd-no-bar.mp4", 1),
                     ("test-padded-dimensions.mp4", 1)]:
        f = os.path.join(vids, clip)
        if not os.path.exists(f):
            continue
        with tempfile.TemporaryDirectory() as t:
            png = os.path.join(t, "f.png")
            r = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(at), "-i", f, "-frames:v", "1", png])
            if r.returncode == 0 and os.path.exists(png):
                out.append((f"vpdq-{clip}", f"vpdq-{clip}", Image.open(png).convert("RGB")))
    walls = {}
    for f in sorted(glob.glob("/usr/share/wallpapers/**/*.*", recursive=True)
                    + glob.glob("/usr/share/backgrounds/**/*.*", recursive=True)):
        if not f.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
            continue
        # Plasma ships each wallpaper at several sizes: keep the largest.
        key = f.split("/contents/")[0] if "/contents/" in f else f
        try:
            size = os.path.getsize(f)
        except OSError:
            continue
        if key not in walls or size > walls[key][0]:
            walls[key] = (size, f)
    for key, (_, f) in sorted(walls.items()):
        try:
            im = Image.open(f).convert("RGB")
        except Exception:
            continue
        name = "wall-" + hashlib.sha1(key.encode()).hexdigest()[:10]
        out.append((name, name, im))
    return out


def originals():
    seen = set()
    res = []
    for name, group, im in collect():
        if im is None or min(im.size) < 64:
            continue
        digest = hashlib.sha1(np.asarray(im.resize((16, 16))).tobytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        w, h = im.size
        pieces = [(name, im)]
        if max(w, h) >= 1600 and min(w, h) >= 900:
            pieces += [
                (f"{name}-q{i}", im.crop(box))
                for i, box in enumerate([(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2),
                                         (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)])
            ]
        for n, p in pieces:
            p = p.copy()
            p.thumbnail((ORIG_MAX, ORIG_MAX), Image.LANCZOS)
            res.append((n, group, p))
    return res


def blurred_fill(im, W, H):
    """Phone-style fill: the image scaled to cover W×H, blurred, with the
    image itself centred on top."""
    w, h = im.size
    s = max(W / w, H / h)
    bg = im.resize((max(1, int(w * s + 1)), max(1, int(h * s + 1))), Image.BILINEAR)
    l, t = (bg.width - W) // 2, (bg.height - H) // 2
    bg = bg.crop((l, t, l + W, t + H)).filter(ImageFilter.GaussianBlur(radius=max(W, H) / 40))
    s2 = min(W / w, H / h)
    fg = im.resize((max(1, int(w * s2)), max(1, int(h * s2))), Image.LANCZOS)
    bg.paste(fg, ((W - fg.width) // 2, (H - fg.height) // 2))
    return bg


def pad(im, frac, colour, rng):
    w, h = im.size
    dx, dy = int(w * frac), int(h * frac)
    if colour == "blur":
        return _pad_blur(im, dx, dy)
    return ImageOps.expand(im, border=(dx, dy, dx, dy), fill=colour)


def _pad_blur(im, dx, dy):
    w, h = im.size
    bg = im.resize((w + 2 * dx, h + 2 * dy), Image.BILINEAR).filter(ImageFilter.GaussianBlur(radius=max(w, h) / 30))
    bg.paste(im, (dx, dy))
    return bg


def letterbox(im, aspect, fill="black"):
    w, h = im.size
    if w / h > aspect:
        W, H = w, int(round(w / aspect))
    else:
        W, H = int(round(h * aspect)), h
    if fill == "blur":
        return blurred_fill(im, W, H)
    out = Image.new("RGB", (W, H), fill)
    out.paste(im, ((W - w) // 2, (H - h) // 2))
    return out


def crop_sides(im, l, t, r, b):
    w, h = im.size
    return im.crop((int(w * l), int(h * t), w - int(w * r), h - int(h * b)))


def logo(im, rng):
    w, h = im.size
    s = max(12, int(min(w, h) * 0.12))
    out = im.copy()
    d = ImageDraw.Draw(out)
    x, y = w - s - int(w * 0.03), int(h * 0.03)
    d.ellipse((x, y, x + s, y + s), fill=(255, 255, 255), outline=(200, 0, 0), width=max(2, s // 10))
    d.rectangle((x + s // 4, y + s // 3, x + 3 * s // 4, y + 2 * s // 3), fill=(200, 0, 0))
    return out


SEED = 0


def caption(i):
    words = ["when", "the", "weekend", "finally", "arrives", "me", "on", "monday", "mood", "every", "time", "really"]
    r = random.Random(i + SEED * 1000003)
    return " ".join(r.choice(words) for _ in range(r.randint(3, 6))).upper()


def meme(im, text, caption_height):
    """augly's meme_format (white caption bar on top, black centred
    ExtraBold text), re-implemented because augly 1.0 calls a Pillow API
    that Pillow 10 removed."""
    from PIL import ImageFont
    import augly

    font_file = os.path.join(os.path.dirname(augly.__file__), "assets", "fonts", "Raleway-ExtraBold.ttf")
    w, h = im.size
    out = Image.new("RGB", (w, h + caption_height), (255, 255, 255))
    out.paste(im, (0, caption_height))
    d = ImageDraw.Draw(out)
    size = caption_height
    while size > 6:
        font = ImageFont.truetype(font_file, size)
        l, t, r, b = d.textbbox((0, 0), text, font=font)
        if r - l <= w * 0.9 and b - t <= caption_height * 0.6:
            break
        size -= 2
    l, t, r, b = d.textbbox((0, 0), text, font=font)
    d.text(((w - (r - l)) / 2 - l, (caption_height - (b - t)) / 2 - t), text, font=font, fill=(0, 0, 0))
    return out


def augly():
    import augly.image as a

    return a


def make_classes():
    A = augly()
    C = {}
    C["pad10_black"] = lambda im, r, i: pad(im, 0.10, (0, 0, 0), r)
    C["pad10_white"] = lambda im, r, i: pad(im, 0.10, (255, 255, 255), r)
    C["pad10_colour"] = lambda im, r, i: pad(im, 0.10, tuple(r.randint(0, 255) for _ in range(3)), r)
    C["pad20_black"] = lambda im, r, i: pad(im, 0.20, (0, 0, 0), r)
    C["pad20_white"] = lambda im, r, i: pad(im, 0.20, (255, 255, 255), r)
    C["pad20_colour"] = lambda im, r, i: pad(im, 0.20, tuple(r.randint(0, 255) for _ in range(3)), r)
    C["pad10_blur"] = lambda im, r, i: pad(im, 0.10, "blur", r)
    C["pad20_blur"] = lambda im, r, i: pad(im, 0.20, "blur", r)
    C["augly_pad"] = lambda im, r, i: A.pad(im, w_factor=0.15, h_factor=0.15,
                                             color=tuple(r.randint(0, 255) for _ in range(3)))
    C["letterbox_1x1"] = lambda im, r, i: letterbox(im, 1.0)
    C["letterbox_9x16"] = lambda im, r, i: letterbox(im, 9 / 16)
    C["letterbox_16x9"] = lambda im, r, i: letterbox(im, 16 / 9)
    C["fill_9x16_blur"] = lambda im, r, i: letterbox(im, 9 / 16, "blur")
    C["mirror"] = lambda im, r, i: ImageOps.mirror(im)
    C["rot90"] = lambda im, r, i: im.transpose(Image.ROTATE_90)
    C["crop2_all"] = lambda im, r, i: crop_sides(im, .02, .02, .02, .02)
    C["crop5_all"] = lambda im, r, i: crop_sides(im, .05, .05, .05, .05)
    C["crop10_all"] = lambda im, r, i: crop_sides(im, .10, .10, .10, .10)
    C["crop15_all"] = lambda im, r, i: crop_sides(im, .15, .15, .15, .15)
    C["crop5_one"] = lambda im, r, i: crop_sides(im, *[.05 if k == i % 4 else 0 for k in range(4)])
    C["crop10_one"] = lambda im, r, i: crop_sides(im, *[.10 if k == i % 4 else 0 for k in range(4)])
    C["crop_rand10"] = lambda im, r, i: crop_sides(im, *[r.uniform(0, .10) for _ in range(4)])
    C["augly_crop"] = lambda im, r, i: A.crop(im, x1=0.06, y1=0.04, x2=0.97, y2=0.92)
    C["meme"] = lambda im, r, i: meme(im, caption(i), max(40, im.height // 5))
    C["text"] = lambda im, r, i: A.overlay_text(im, text=[r.randint(0, 1000) for _ in range(6)], font_size=0.1,
                                                 x_pos=0.05, y_pos=0.75, color=(255, 255, 0))
    C["emoji"] = lambda im, r, i: A.overlay_emoji(im, emoji_size=0.15, x_pos=0.05, y_pos=0.05)
    C["logo"] = lambda im, r, i: logo(im, r)
    C["screenshot"] = lambda im, r, i: A.overlay_onto_screenshot(im)
    C["jpeg_q30"] = None  # written with quality 30
    C["resize_025"] = lambda im, r, i: im.resize((max(8, im.width // 4), max(8, im.height // 4)), Image.LANCZOS)
    C["mirror_crop5"] = lambda im, r, i: crop_sides(ImageOps.mirror(im), .05, .05, .05, .05)
    C["meme_crop5"] = lambda im, r, i: crop_sides(
        meme(im, caption(i), max(40, im.height // 5)), .05, .0, .05, .05)
    C["pad_text"] = lambda im, r, i: A.overlay_text(pad(im, 0.10, (0, 0, 0), r), text=[r.randint(0, 1000) for _ in range(5)],
                                                     font_size=0.08, x_pos=0.1, y_pos=0.8, color=(255, 255, 255))
    C["pad10_black_dot"] = lambda im, r, i: _dot(pad(im, 0.10, (0, 0, 0), r))
    return C


def _dot(im):
    """One bright pixel in the border: stops black-only unletterboxing."""
    im = im.copy()
    im.putpixel((2, 2), (255, 255, 255))
    return im


def main():
    global SEED
    out = sys.argv[1]
    maxn = int(sys.argv[sys.argv.index("--max-originals") + 1]) if "--max-originals" in sys.argv else 10**9
    SEED = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    os.makedirs(os.path.join(out, "originals"), exist_ok=True)
    origs = originals()
    if SEED:
        random.Random(SEED).shuffle(origs)
    origs = origs[:maxn]
    classes = make_classes()
    rows = []
    for i, (name, group, im) in enumerate(origs):
        p = os.path.join(out, "originals", f"{i:04d}.png")
        im.save(p)
        rows.append(("original", "", os.path.relpath(p, out), f"{i:04d}", group))
    for cname, f in classes.items():
        d = os.path.join(out, "queries", cname)
        os.makedirs(d, exist_ok=True)
        for i, (name, group, im) in enumerate(origs):
            rng = random.Random(i * 7919 + sum(map(ord, cname)) + SEED * 1000003)
            try:
                q = im if f is None else f(im, rng, i)
                q = q.convert("RGB")
            except Exception as e:
                print(f"{cname} {i}: {e}", file=sys.stderr)
                continue
            p = os.path.join(d, f"{i:04d}.jpg")
            q.save(p, quality=30 if cname == "jpeg_q30" else 90)
            rows.append(("query", cname, os.path.relpath(p, out), f"{i:04d}", group))
        print(f"{cname}: done", file=sys.stderr)
    with open(os.path.join(out, "manifest.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "class", "path", "original", "group"])
        w.writerows(rows)
    print(f"{len(origs)} originals, {len(rows) - len(origs)} queries in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
