#!/usr/bin/env python3
"""Writes the decoder test fixtures of Tests/ImageTests/Fixtures: small PNG and JPEG files of
every colour type the decoders handle, and expected.json with the pixels Pillow decodes from
them (converted to "L" or "RGB" as torchvision's pil_loader does, EXIF orientation ignored).

Pillow is an independent decoder here, used only to write these committed files; it is never a
build or test dependency. Run from the repository root:  python3 Scripts/make_image_fixtures.py
"""
import io
import json
import os
import struct
import zlib

from PIL import Image

OUT = os.path.join("Tests", "ImageTests", "Fixtures")


def pattern(width, height, channels, seed):
    """Deterministic pixel values with edges and gradients (so chroma subsampling matters)."""
    values = []
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                values.append((x * 37 + y * 53 + c * 91 + seed * 17 + (x * y * (c + 3)) % 29) % 256)
    return bytes(values)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, samples):
    """A PNG written by hand (Pillow cannot write 16-bit RGB): filter 0 on every row."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row_bytes = width * channels * bit_depth // 8
    raw = b"".join(b"\x00" + samples[y * row_bytes:(y + 1) * row_bytes] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def exif_orientation(value):
    """A minimal little-endian EXIF block with one Orientation tag."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, value, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}

    def save(name, image, **options):
        path = os.path.join(OUT, name)
        image.save(path, **options)
        files[name] = path

    def write(name, data):
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = path

    save("gray8.png", Image.frombytes("L", (7, 5), pattern(7, 5, 1, 1)))
    save("rgb8.png", Image.frombytes("RGB", (6, 4), pattern(6, 4, 3, 2)))
    save("rgba8.png", Image.frombytes("RGBA", (5, 3), pattern(5, 3, 4, 3)))
    save("graya8.png", Image.frombytes("LA", (4, 3), pattern(4, 3, 2, 4)))
    palette = Image.frombytes("RGB", (9, 6), pattern(9, 6, 3, 5)).quantize(colors=13)
    save("palette.png", palette)
    save("palette-trns.png", palette, transparency=3)
    save("bilevel.png", Image.frombytes("L", (11, 3), pattern(11, 3, 1, 6)).convert("1"))
    write("gray16.png", raw_png(5, 4, 16, 0, pattern(5, 4, 2, 7)))
    write("rgb16.png", raw_png(4, 3, 16, 2, pattern(4, 3, 6, 8)))
    write("rgba16.png", raw_png(3, 3, 16, 6, pattern(3, 3, 8, 9)))

    photo = Image.frombytes("RGB", (19, 13), pattern(19, 13, 3, 10))
    save("rgb420.jpg", photo, quality=90)
    save("rgb444.jpg", photo, quality=95, subsampling=0)
    save("progressive.jpg", photo, quality=85, progressive=True)
    save("gray.jpg", Image.frombytes("L", (17, 9), pattern(17, 9, 1, 11)), quality=90)
    save("exif-rotated.jpg", photo, quality=90, exif=exif_orientation(6))
    save("cmyk.jpg", Image.frombytes("CMYK", (8, 8), pattern(8, 8, 4, 12)), quality=90)

    # 16-bit files: Pillow clips 16-bit grey to 255 when converting to "L" and keeps the high
    # byte of 16-bit colour, so the expected 8-bit values are the samples written above scaled
    # by 255/65535 and rounded (what libpng's simplified API does for sRGB-encoded data);
    # Pillow's own values are kept beside them as "pillow_pixels".
    sixteen = {"gray16.png": (pattern(5, 4, 2, 7), 1, 1), "rgb16.png": (pattern(4, 3, 6, 8), 3, 3),
               "rgba16.png": (pattern(3, 3, 8, 9), 4, 3)}

    expected = {}
    for name, path in sorted(files.items()):
        image = Image.open(path)
        if image.mode == "CMYK":
            expected[name] = {"refused": "CMYK"}
            continue
        # torchvision's pil_loader converts to RGB; the decoders keep grey images grey, which is
        # Pillow's "L" (as "1", "LA" and 16-bit grey convert to).
        mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B") else "RGB"
        converted = image.convert(mode)
        expected[name] = {"channels": 1 if mode == "L" else 3, "width": converted.width,
                          "height": converted.height, "source_mode": image.mode,
                          "pixels": list(converted.tobytes())}
        if name in sixteen:
            samples, stored, kept = sixteen[name]
            values = struct.unpack(f">{len(samples) // 2}H", samples)
            scaled = [(v * 255 + 32767) // 65535 for i, v in enumerate(values) if i % stored < kept]
            expected[name]["pillow_pixels"] = expected[name]["pixels"]
            expected[name]["pixels"] = scaled
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"generator": f"Pillow {Image.__version__ if hasattr(Image, '__version__') else ''}".strip(),
                   "images": expected}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(files)} images and expected.json to {OUT}")


if __name__ == "__main__":
    main()
