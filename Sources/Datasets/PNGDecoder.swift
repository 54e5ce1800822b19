import CLibPNG
import Foundation

/// PNG decoding with libpng's simplified API (`png_image_*`, png.h), which reports errors in
/// `png_image.message` rather than by longjmp. Output is 8-bit grey or RGB: palette images
/// become RGB, alpha is dropped (not composited, as Pillow's `convert("RGB")`/`("L")`), 16-bit
/// samples are scaled to 8 bits (read as sRGB-encoded: `PNG_IMAGE_FLAG_16BIT_sRGB`).
public enum PNGDecoder {
    public static func decode(_ bytes: [UInt8], maximumPixels: Int = ImageDecoding.maximumPixels) throws -> DecodedImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let began = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw ImageDecodingError.corrupt(format: "PNG", reason: message(image)) }

        let color = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let alpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        let stored = (color ? 3 : 1) + (alpha ? 1 : 0)
        let width = Int(image.width), height = Int(image.height)
        let size = try ImageDecoding.checkedSize(width: width, height: height, channels: stored, maximumPixels: maximumPixels)
        image.format = (color ? UInt32(PNG_FORMAT_FLAG_COLOR) : 0) | (alpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)

        var samples = [UInt8](repeating: 0, count: size)
        let rowStride = Int32(width * stored)
        let finished = samples.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, rowStride, nil) }
        guard finished != 0 else { throw ImageDecodingError.corrupt(format: "PNG", reason: message(image)) }

        let channels = color ? 3 : 1
        guard alpha else { return DecodedImage(width: width, height: height, channels: channels, pixels: samples) }
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        samples.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(width * height) {
                    for c in 0..<channels { dst[i * channels + c] = src[i * stored + c] }
                }
            }
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }

    private static func message(_ image: png_image) -> String {
        var m = image.message
        let text = withUnsafeBytes(of: &m) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return text.isEmpty ? "libpng gave no reason" : text
    }
}
