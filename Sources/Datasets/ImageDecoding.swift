import Foundation

/// An 8-bit image as decoded from a file: `height` rows of `width` pixels of `channels`
/// interleaved samples (1: grey, 3: RGB), top row first.
public struct DecodedImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(channels == 1 || channels == 3, "DecodedImage: \(channels) channels, expected 1 or 3")
        precondition(pixels.count == width * height * channels,
                     "DecodedImage: \(pixels.count) samples for \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The same image with `channels` channels, converted as Pillow's `Image.convert` does:
    /// grey to RGB repeats the grey; RGB to grey is ITU-R 601-2 luma, L = (19595 R + 38470 G
    /// + 7471 B + 2^15) >> 16 (Pillow's src/libImaging/Convert.c, `L24`).
    public func converted(to channels: Int) -> DecodedImage {
        precondition(channels == 1 || channels == 3, "DecodedImage.converted: \(channels) channels")
        if channels == self.channels { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * channels)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if channels == 3 {
                    for i in 0..<n { let v = src[i]; dst[3 * i] = v; dst[3 * i + 1] = v; dst[3 * i + 2] = v }
                } else {
                    for i in 0..<n {
                        let l = 19595 * Int(src[3 * i]) + 38470 * Int(src[3 * i + 1]) + 7471 * Int(src[3 * i + 2]) + 0x8000
                        dst[i] = UInt8(l >> 16)
                    }
                }
            }
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: out)
    }
}

/// Why bytes do not decode to an image. The data loader adds the file's name (as
/// `DatasetError.badImage`).
public enum ImageDecodingError: Error, CustomStringConvertible, Equatable {
    /// No bytes at all.
    case empty
    /// Neither PNG's nor JPEG's signature; `head` is the first bytes in hex.
    case unknownFormat(head: String)
    /// The codec rejected the data: corrupt, truncated or unsupported by the codec.
    case corrupt(format: String, reason: String)
    /// A valid file of a kind the decoders refuse (CMYK JPEG).
    case unsupported(format: String, reason: String)
    /// The header announces more pixels than `ImageDecoding.maximumPixels`, or a zero side.
    case badSize(width: Int, height: Int, reason: String)

    public var description: String {
        switch self {
        case .empty:
            return "empty file (0 bytes); remove it or copy it again"
        case .unknownFormat(let head):
            return "not a PNG or JPEG file (starts with \(head)); only PNG and JPEG are read: convert it or remove it"
        case .corrupt(let format, let reason):
            return "corrupt \(format) data: \(reason); the file is damaged or incomplete: copy it again or remove it"
        case .unsupported(let format, let reason):
            return "unsupported \(format): \(reason)"
        case .badSize(let width, let height, let reason):
            return "image size \(width)x\(height): \(reason)"
        }
    }
}

/// Decodes PNG and JPEG bytes by their signature (not the file's extension).
public enum ImageDecoding {
    /// The most pixels an image may have: Pillow's `DecompressionBombError` threshold
    /// (2 × `Image.MAX_IMAGE_PIXELS`, PIL/Image.py), checked from the header before any
    /// pixel buffer is allocated.
    public static let maximumPixels = 178_956_970

    public enum Format: String, Sendable { case png = "PNG", jpeg = "JPEG" }

    /// The format of `bytes` by its signature, nil when neither.
    public static func format(of bytes: [UInt8]) -> Format? {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        return nil
    }

    /// The image in `bytes`, grey or RGB as stored (palette, alpha and 16-bit PNG converted;
    /// EXIF orientation ignored, as torchvision's `pil_loader` does).
    public static func decode(_ bytes: [UInt8], maximumPixels: Int = maximumPixels) throws -> DecodedImage {
        guard !bytes.isEmpty else { throw ImageDecodingError.empty }
        switch format(of: bytes) {
        case .png: return try PNGDecoder.decode(bytes, maximumPixels: maximumPixels)
        case .jpeg: return try JPEGDecoder.decode(bytes, maximumPixels: maximumPixels)
        case nil:
            let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw ImageDecodingError.unknownFormat(head: head)
        }
    }

    /// The number of bytes of a `width × height × channels` 8-bit image, checked against
    /// `maximumPixels` with overflow-checked arithmetic, before anything is allocated.
    static func checkedSize(width: Int, height: Int, channels: Int, maximumPixels: Int) throws -> Int {
        guard width > 0, height > 0 else {
            throw ImageDecodingError.badSize(width: width, height: height, reason: "a side is zero")
        }
        let (pixels, o1) = width.multipliedReportingOverflow(by: height)
        let (bytes, o2) = pixels.multipliedReportingOverflow(by: channels)
        guard !o1, !o2, pixels <= maximumPixels else {
            throw ImageDecodingError.badSize(width: width, height: height,
                                             reason: "more than \(maximumPixels) pixels (Pillow's decompression-bomb limit);"
                                                 + " downscale the image")
        }
        return bytes
    }
}
