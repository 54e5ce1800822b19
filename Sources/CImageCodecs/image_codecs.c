// JPEG decoding with libjpeg(-turbo) whose fatal errors return instead of exiting: see
// include/image_codecs.h. Every function that calls into libjpeg sets its own setjmp point, so a
// longjmp from error_exit only ever unwinds C frames of libjpeg and of that function.
#include "image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

struct ic_jpeg {
    struct jpeg_decompress_struct info;
    struct jpeg_error_mgr errors;
    jmp_buf jump;
    int created;
    int header_read;
    const unsigned char *data;
    size_t size;
    char message[JMSG_LENGTH_MAX + 64];
};

static void ic_error_exit(j_common_ptr info) {
    ic_jpeg *decoder = (ic_jpeg *)info->client_data;
    (*info->err->format_message)(info, decoder->message);
    longjmp(decoder->jump, 1);
}

static void ic_emit_message(j_common_ptr info, int level) {
    ic_jpeg *decoder = (ic_jpeg *)info->client_data;
    if (level >= 0) return;  // trace messages
    info->err->num_warnings++;
    if (info->err->msg_code == JWRN_JPEG_EOF) {
        // libjpeg would insert an end-of-image marker and fill the rest with grey.
        (*info->err->format_message)(info, decoder->message);
        strncat(decoder->message, " (the file is truncated)", sizeof decoder->message - strlen(decoder->message) - 1);
        longjmp(decoder->jump, 1);
    }
}

static void ic_output_message(j_common_ptr info) { (void)info; }

ic_jpeg *ic_jpeg_create(const unsigned char *data, size_t size) {
    ic_jpeg *decoder = calloc(1, sizeof *decoder);
    if (!decoder) return NULL;
    decoder->data = data;
    decoder->size = size;
    decoder->info.err = jpeg_std_error(&decoder->errors);
    decoder->errors.error_exit = ic_error_exit;
    decoder->errors.emit_message = ic_emit_message;
    decoder->errors.output_message = ic_output_message;
    decoder->info.client_data = decoder;
    if (setjmp(decoder->jump)) {
        jpeg_destroy_decompress(&decoder->info);
        free(decoder);
        return NULL;
    }
    jpeg_create_decompress(&decoder->info);
    decoder->created = 1;
    return decoder;
}

int ic_jpeg_read_header(ic_jpeg *decoder, unsigned int *width, unsigned int *height, int *components,
                        int *color_space) {
    if (decoder->header_read) {
        snprintf(decoder->message, sizeof decoder->message, "ic_jpeg_read_header called twice");
        return -1;
    }
    if (decoder->size == 0 || decoder->size > (size_t)(unsigned long)-1) {
        snprintf(decoder->message, sizeof decoder->message, "empty data");
        return -1;
    }
    if (setjmp(decoder->jump)) return -1;
    jpeg_mem_src(&decoder->info, decoder->data, (unsigned long)decoder->size);
    jpeg_read_header(&decoder->info, TRUE);
    decoder->header_read = 1;
    *width = decoder->info.image_width;
    *height = decoder->info.image_height;
    switch (decoder->info.jpeg_color_space) {
    case JCS_GRAYSCALE:
        *color_space = IC_JPEG_GRAY; *components = 1; break;
    case JCS_YCbCr: case JCS_RGB:
        *color_space = IC_JPEG_RGB; *components = 3; break;
    case JCS_CMYK: case JCS_YCCK:
        *color_space = IC_JPEG_CMYK; *components = 4; break;
    default:
        *color_space = IC_JPEG_OTHER; *components = decoder->info.num_components; break;
    }
    return 0;
}

int ic_jpeg_decode(ic_jpeg *decoder, unsigned char *buffer, size_t stride, size_t buffer_size) {
    if (!decoder->header_read) {
        snprintf(decoder->message, sizeof decoder->message, "ic_jpeg_decode called before ic_jpeg_read_header");
        return -1;
    }
    if (setjmp(decoder->jump)) return -1;
    struct jpeg_decompress_struct *info = &decoder->info;
    if (info->jpeg_color_space == JCS_GRAYSCALE) info->out_color_space = JCS_GRAYSCALE;
    else if (info->jpeg_color_space == JCS_YCbCr || info->jpeg_color_space == JCS_RGB) info->out_color_space = JCS_RGB;
    else {
        snprintf(decoder->message, sizeof decoder->message, "unsupported JPEG colour space %d",
                 (int)info->jpeg_color_space);
        return -1;
    }
    jpeg_start_decompress(info);
    size_t row_bytes = (size_t)info->output_width * (size_t)info->output_components;
    if (row_bytes > stride || (size_t)info->output_height > buffer_size / (stride ? stride : 1)) {
        snprintf(decoder->message, sizeof decoder->message, "output buffer of %zu bytes is too small for %ux%ux%d",
                 buffer_size, info->output_width, info->output_height, info->output_components);
        jpeg_abort_decompress(info);
        return -1;
    }
    while (info->output_scanline < info->output_height) {
        JSAMPROW row = buffer + (size_t)info->output_scanline * stride;
        jpeg_read_scanlines(info, &row, 1);
    }
    jpeg_finish_decompress(info);
    return 0;
}

const char *ic_jpeg_message(const ic_jpeg *decoder) { return decoder ? decoder->message : "out of memory"; }

void ic_jpeg_destroy(ic_jpeg *decoder) {
    if (!decoder) return;
    if (decoder->created) jpeg_destroy_decompress(&decoder->info);
    free(decoder);
}

// MARK: Encoding

struct ic_encoder {
    struct jpeg_compress_struct info;
    struct jpeg_error_mgr errors;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void ic_encoder_error_exit(j_common_ptr info) {
    struct ic_encoder *encoder = (struct ic_encoder *)info->client_data;
    (*info->err->format_message)(info, encoder->message);
    longjmp(encoder->jump, 1);
}

int ic_jpeg_encode(const unsigned char *pixels, unsigned int width, unsigned int height, int components, int quality,
                   unsigned char **out, unsigned long *out_size, char *message, size_t message_size) {
    *out = NULL;
    *out_size = 0;
    if (components != 1 && components != 3) {
        snprintf(message, message_size, "%d components: JPEG images here are grey (1) or RGB (3)", components);
        return -1;
    }
    struct ic_encoder *encoder = calloc(1, sizeof *encoder);
    if (!encoder) { snprintf(message, message_size, "out of memory"); return -1; }
    encoder->info.err = jpeg_std_error(&encoder->errors);
    encoder->errors.error_exit = ic_encoder_error_exit;
    encoder->errors.output_message = ic_output_message;
    encoder->info.client_data = encoder;
    if (setjmp(encoder->jump)) {
        snprintf(message, message_size, "%s", encoder->message);
        jpeg_destroy_compress(&encoder->info);
        free(*out);
        *out = NULL;
        *out_size = 0;
        free(encoder);
        return -1;
    }
    jpeg_create_compress(&encoder->info);
    jpeg_mem_dest(&encoder->info, out, out_size);
    encoder->info.image_width = width;
    encoder->info.image_height = height;
    encoder->info.input_components = components;
    encoder->info.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&encoder->info);
    jpeg_set_quality(&encoder->info, quality, TRUE);
    jpeg_start_compress(&encoder->info, TRUE);
    size_t stride = (size_t)width * (size_t)components;
    while (encoder->info.next_scanline < encoder->info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)encoder->info.next_scanline * stride);
        jpeg_write_scanlines(&encoder->info, &row, 1);
    }
    jpeg_finish_compress(&encoder->info);
    jpeg_destroy_compress(&encoder->info);
    free(encoder);
    return 0;
}

void ic_free(void *buffer) { free(buffer); }
