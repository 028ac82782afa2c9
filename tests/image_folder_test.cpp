// Image-folder data sets (ImageNet's layout): the JPEG decoder, torchvision's two pipelines, the
// folder walk, batches through the prefetcher, and a fine-tune of the real binary. The JPEGs are
// written here with libjpeg-turbo, so the tests need the build that reads them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <zlib.h>
#include <nlohmann/json.hpp>

#include "advft/config/config.h"
#include "advft/data/image_file.h"
#include "advft/data/image_folder.h"
#include "advft/data/jpeg.h"
#include "advft/data/loader.h"
#include "advft/data/png.h"
#include "advft/data/source.h"
#include "advft/error.h"
#include "advft/io/metrics.h"
#include "fixtures.h"

#ifdef ADVFT_HAVE_JPEG
#include <turbojpeg.h>

namespace advft::testing {
namespace {

using nlohmann::json;

/// `pixels` (uint8 [H, W, channels] in `format`) as a JPEG file's bytes, at quality 100 without
/// chroma subsampling, so that decoding gives the pixels back within a step or two.
std::string encode_jpeg(const torch::Tensor& pixels, int format, int subsampling = TJSAMP_444) {
  const torch::Tensor hwc = pixels.contiguous();
  tjhandle handle = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(handle, hwc.data_ptr<uint8_t>(), static_cast<int>(hwc.size(1)), 0,
                             static_cast<int>(hwc.size(0)), format, &buffer, &size, subsampling,
                             100, TJFLAG_ACCURATEDCT);
  EXPECT_EQ(rc, 0) << tjGetErrorStr2(handle);
  std::string bytes(reinterpret_cast<const char*>(buffer), size);
  tjFree(buffer);
  tjDestroy(handle);
  return bytes;
}

/// An RGB image of one colour, [H, W, 3].
torch::Tensor solid(int64_t h, int64_t w, int r, int g, int b) {
  return torch::tensor({r, g, b}, torch::kUInt8).reshape({1, 1, 3}).expand({h, w, 3}).contiguous();
}

template <typename Fn>
std::string data_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "no DataError";
  return "";
}

TEST(Jpeg, DecodesRgbAndGrayIntoThreeChannels) {
  // A smooth gradient survives quality-100 JPEG within a couple of steps.
  const torch::Tensor ramp = torch::arange(0, 64, torch::kInt).mul(4).to(torch::kUInt8);
  const torch::Tensor rgb = torch::stack({ramp.unsqueeze(0).expand({48, 64}),
                                          ramp.flip({0}).unsqueeze(0).expand({48, 64}),
                                          torch::full({48, 64}, 77, torch::kUInt8)},
                                         2)
                                .contiguous();
  const torch::Tensor decoded = data::decode_jpeg(encode_jpeg(rgb, TJPF_RGB), "rgb.jpg");
  ASSERT_EQ(decoded.sizes(), (std::vector<int64_t>{3, 48, 64}));
  EXPECT_LE(
      (decoded.to(torch::kInt) - rgb.permute({2, 0, 1}).to(torch::kInt)).abs().max().item<int>(),
      3);

  const torch::Tensor gray = ramp.unsqueeze(0).expand({16, 64}).unsqueeze(2).contiguous();
  const torch::Tensor g = data::decode_jpeg(encode_jpeg(gray, TJPF_GRAY, TJSAMP_GRAY), "gray.jpg");
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{3, 16, 64}));
  EXPECT_TRUE(torch::equal(g[0], g[1]) && torch::equal(g[1], g[2]));
  EXPECT_LE((g[0].to(torch::kInt) - gray.squeeze(2).to(torch::kInt)).abs().max().item<int>(), 3);
}

TEST(Jpeg, ConvertsPhotoshopCmykAsPillowDoes) {
  // Stored (inverted) inks C' = 200, M' = 100, Y' = 255, K' = 128; Pillow gives
  // R = K' - MULDIV255(255 - C', K') = 128 - 28 = 100, G = 128 - 78 = 50, B = 128 - 0 = 128.
  const torch::Tensor cmyk =
      torch::tensor({200, 100, 255, 128}, torch::kUInt8).reshape({1, 1, 4}).expand({16, 16, 4});
  const torch::Tensor rgb = data::decode_jpeg(encode_jpeg(cmyk, TJPF_CMYK), "cmyk.jpg");
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 16, 16}));
  const torch::Tensor expected = torch::tensor({100, 50, 128}, torch::kInt).reshape({3, 1, 1});
  EXPECT_LE((rgb.to(torch::kInt) - expected).abs().max().item<int>(), 2) << rgb.select(2, 0);
}

TEST(ImageFile, RefusesOtherFormatsAndDamagedFilesNamingThem) {
  const std::string gif = "GIF89a\x01\0\x01\0";
  std::string message = data_error_of([&] { data::decode_image(gif, "x/cat.JPEG"); });
  EXPECT_NE(message.find("x/cat.JPEG: neither a JPEG nor a PNG image"), std::string::npos)
      << message;
  const std::string png_start = std::string("\x89PNG\r\n\x1a\n", 8) + "\0\0\0\rIHDR";
  message = data_error_of([&] { data::decode_image(png_start, "x/dog.png"); });
  EXPECT_NE(message.find("x/dog.png: damaged PNG"), std::string::npos) << message;

  const std::string whole = encode_jpeg(solid(32, 32, 10, 20, 30), TJPF_RGB);
  message = data_error_of([&] { data::decode_image(whole.substr(0, 20), "x/short.jpg"); });
  EXPECT_NE(message.find("x/short.jpg"), std::string::npos) << message;

  // Cut inside the image data: refused, as Pillow refuses it ("image file is truncated"), where
  // libjpeg alone would fill the rest with grey. Only the end-of-image marker missing: read, as
  // Pillow reads it.
  torch::manual_seed(3);
  const std::string noisy =
      encode_jpeg(torch::randint(0, 256, {3, 48, 64}, torch::kUInt8), TJPF_RGB);
  ASSERT_EQ(noisy.substr(noisy.size() - 2), "\xFF\xD9");
  for (const double kept : {0.3, 0.5, 0.95}) {
    const auto cut = static_cast<size_t>(kept * static_cast<double>(noisy.size()));
    message = data_error_of([&] { data::decode_image(noisy.substr(0, cut), "x/cut.jpg"); });
    EXPECT_NE(message.find("x/cut.jpg: damaged JPEG: the file ends inside its image data"),
              std::string::npos)
        << kept << ": " << message;
  }
  EXPECT_TRUE(torch::equal(data::decode_image(noisy.substr(0, noisy.size() - 2), "x/no_eoi.jpg"),
                           data::decode_image(noisy, "x/whole.jpg")));

  message = data_error_of([&] { data::read_image("/nonexistent/dog.jpg"); });
  EXPECT_NE(message.find("cannot read /nonexistent/dog.jpg: "), std::string::npos) << message;
}

std::string be32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

// A PNG chunk: big-endian length, type, data, CRC-32 of type and data.
std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  const auto crc =
      ::crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(static_cast<uint32_t>(crc));
}

TEST(ImageFile, RefusesHeadersAnnouncingImpossibleSizesBeforeAllocating) {
  // 20000 x 20000 = 4e8 pixels, over the 2^28 bound: 1.2 GB that a damaged header must not get.
  std::string jpeg = encode_jpeg(solid(32, 32, 10, 20, 30), TJPF_RGB);
  const std::size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  jpeg.replace(sof + 5, 4, std::string("\x4E\x20\x4E\x20", 4));  // height, width: 20000
  std::string message = data_error_of([&] { data::decode_image(jpeg, "x/huge.jpg"); });
  EXPECT_NE(message.find("x/huge.jpg: JPEG header says 20000x20000 pixels; the file is damaged"),
            std::string::npos)
      << message;

  const std::string ihdr = std::string("\0\0\x4E\x20\0\0\x4E\x20\x08\x02\0\0\0", 13);
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
                          png_chunk("IDAT", "x") + png_chunk("IEND", "");
  message = data_error_of([&] { data::decode_image(png, "x/huge.png"); });
  EXPECT_NE(message.find("x/huge.png: PNG header says 20000x20000 pixels; the file is damaged"),
            std::string::npos)
      << message;
}

std::string bytes_of(std::initializer_list<int> values) {
  std::string bytes;
  for (const int v : values)
    bytes += static_cast<char>(v);
  return bytes;
}

/// A PNG file of `height` rows of `samples` (unfiltered, rows back to back, 16-bit samples
/// big-endian), with the `extra` chunks before its image data.
std::string png_file(uint32_t width, uint32_t height, int bit_depth, int color_type,
                     const std::string& samples, const std::string& extra = "") {
  const std::size_t row_bytes = samples.size() / height;
  std::string scanlines;
  for (std::size_t y = 0; y < height; ++y)
    scanlines += '\0' + samples.substr(y * row_bytes, row_bytes);  // filter type 0: none
  uLongf size = compressBound(static_cast<uLong>(scanlines.size()));
  std::string compressed(size, '\0');
  EXPECT_EQ(compress(reinterpret_cast<Bytef*>(compressed.data()), &size,
                     reinterpret_cast<const Bytef*>(scanlines.data()),
                     static_cast<uLong>(scanlines.size())),
            Z_OK);
  compressed.resize(size);
  const std::string ihdr = be32(width) + be32(height) + bytes_of({bit_depth, color_type, 0, 0, 0});
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + extra +
         png_chunk("IDAT", compressed) + png_chunk("IEND", "");
}

/// Decoded [3, H, W] pixels as r, g, b of each pixel in turn, row by row.
std::vector<int> rgb_values(const torch::Tensor& pixels) {
  const torch::Tensor hwc = pixels.permute({1, 2, 0}).contiguous().to(torch::kInt);
  return std::vector<int>(hwc.data_ptr<int>(), hwc.data_ptr<int>() + hwc.numel());
}

TEST(Png, GivesTheStoredSamplesWhateverTheGammaChunkSays) {
  if (!data::png_supported()) GTEST_SKIP() << "built without libpng";
  // Pillow ignores gAMA: a file marked linear (1.0) or with another gamma than sRGB's gives its
  // stored values, which libpng's simplified API re-encoded for sRGB ((64, 128, 200) at gamma 1.0
  // came out as (136, 186, 228)).
  const std::string rgb = bytes_of({64, 128, 200, 10, 20, 30});
  for (const uint32_t gamma : {100000u, 55556u, 45455u}) {
    const std::string png = png_file(2, 1, 8, 2, rgb, png_chunk("gAMA", be32(gamma)));
    EXPECT_EQ(rgb_values(data::decode_png(png, "x/gamma.png")),
              (std::vector<int>{64, 128, 200, 10, 20, 30}))
        << "gAMA " << gamma;
  }
  const std::string gray =
      png_file(2, 1, 8, 0, bytes_of({64, 200}), png_chunk("gAMA", be32(100000)));
  EXPECT_EQ(rgb_values(data::decode_png(gray, "x/gray.png")),
            (std::vector<int>{64, 64, 64, 200, 200, 200}));
}

TEST(Png, KeepsTheTopByteOf16BitSamples) {
  if (!data::png_supported()) GTEST_SKIP() << "built without libpng";
  // Pillow unpacks 16-bit colour to v >> 8 (its "RGB;16B" mode), where rounding v / 257, as
  // libpng's simplified API does, turns 0x00FF into 1.
  const std::string rgb16 =
      bytes_of({0x7F, 0xFF, 0x80, 0xFF, 0x01, 0x80, 0x00, 0xFF, 0xFF, 0x7F, 0x12, 0x34});
  EXPECT_EQ(rgb_values(data::decode_png(png_file(2, 1, 16, 2, rgb16), "x/rgb16.png")),
            (std::vector<int>{0x7F, 0x80, 0x01, 0x00, 0xFF, 0x12}));
  // 16-bit grey differs from Pillow on purpose: Pillow opens it as 32-bit integers (mode "I")
  // and convert("RGB") clips them at 255 (python-pillow #2574, #4044), so 1000 and 40000 both
  // come out white there. The top byte, as for colour, keeps the picture: 3 and 156.
  const std::string gray16 = bytes_of({0x03, 0xE8, 0x9C, 0x40});
  EXPECT_EQ(rgb_values(data::decode_png(png_file(2, 1, 16, 0, gray16), "x/gray16.png")),
            (std::vector<int>{3, 3, 3, 156, 156, 156}));
}

TEST(Png, RefusesDamagedFilesNamingThemWithoutPrintingAnything) {
  if (!data::png_supported()) GTEST_SKIP() << "built without libpng";
  const std::string pixels = bytes_of({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  const std::string good = png_file(2, 2, 8, 2, pixels);
  const std::size_t idat = good.find("IDAT") - 4;  // where the chunk starts: its length
  const std::size_t iend = good.find("IEND") - 4;
  // libpng reports through callbacks whose default prints to stderr; worker threads printing
  // "libpng warning: ..." for every odd file would bury the log.
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(rgb_values(data::decode_png(good, "x/good.png")),
            (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));

  std::string bad_crc = good;
  bad_crc[iend - 1] = static_cast<char>(bad_crc[iend - 1] ^ 1);  // the IDAT chunk's CRC
  const std::string not_zlib = std::string("\x89PNG\r\n\x1a\n", 8) + good.substr(8, idat - 8) +
                               png_chunk("IDAT", "not zlib data") + png_chunk("IEND", "");
  for (const auto& [name, bytes] :
       std::vector<std::pair<std::string, std::string>>{{"x/cut.png", good.substr(0, idat + 10)},
                                                        {"x/crc.png", bad_crc},
                                                        {"x/garbage.png", not_zlib}}) {
    const std::string message = data_error_of([&] { data::decode_image(bytes, name); });
    EXPECT_NE(message.find(name + ": damaged PNG: "), std::string::npos) << message;
  }

  // As Pillow does, a file that ends after its image data, without IEND, is read.
  EXPECT_TRUE(torch::equal(data::decode_png(good.substr(0, iend), "x/no_iend.png"),
                           data::decode_png(good, "x/good.png")));
  // A damaged ancillary chunk is dropped with a warning (libpng's default; Pillow refuses the
  // file) and the pixels are read.
  std::string gamma = png_chunk("gAMA", be32(100000));
  gamma.back() = static_cast<char>(gamma.back() ^ 1);
  EXPECT_EQ(rgb_values(data::decode_png(png_file(2, 2, 8, 2, pixels, gamma), "x/gama.png")),
            rgb_values(data::decode_png(good, "x/good.png")));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(ImageTransform, EvaluationResizesTheShorterSideAndTakesTheCentre) {
  // A horizontal ramp, 4 levels per column, 40 high and 60 wide. Resize(16): 16x24, so the
  // centre crop starts 4 columns in; output column j samples source x = (4 + j + 0.5) * 2.5 - 0.5
  // (a linear ramp stays linear under the antialiasing filter).
  const torch::Tensor ramp = torch::arange(0, 60, torch::kFloat).mul(4).to(torch::kUInt8);
  const torch::Tensor image = ramp.reshape({1, 1, 60}).expand({3, 40, 60}).contiguous();
  data::ImageTransform t;
  t.image_size = 16;
  t.resize_size = 16;
  torch::Tensor out = torch::empty({3, 16, 16}, torch::kUInt8);
  data::transform_image(image, t, 0, out);
  for (int64_t j : {2, 8, 13}) {
    const double x = (4 + j + 0.5) * 2.5 - 0.5;
    EXPECT_NEAR(out[0][8][j].item<int>(), 4 * x, 1.5) << "column " << j;
  }
  EXPECT_TRUE(torch::equal(out[0], out[1]) && torch::equal(out[0][0], out[0][15]));

  // A picture symmetric about its centre stays symmetric: the crop is centred both ways.
  torch::Tensor dot = torch::zeros({3, 50, 70}, torch::kUInt8);
  dot.narrow(1, 20, 10).narrow(2, 30, 10).fill_(255);
  t.resize_size = 20;
  data::transform_image(dot, t, 0, out);
  EXPECT_TRUE(torch::equal(out, out.flip({1}))) << out[0];
  EXPECT_TRUE(torch::equal(out, out.flip({2}))) << out[0];
  EXPECT_GT(out[0][8][8].item<int>(), 200);
}

TEST(ImageTransform, RandomCropsFollowTorchvisionsBoundsAndTheSeed) {
  std::set<std::vector<int64_t>> distinct;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const data::CropBox box = data::random_resized_crop_box(300, 400, 0.25, seed);
    ASSERT_GE(box.top, 0);
    ASSERT_GE(box.left, 0);
    ASSERT_LE(box.top + box.height, 300);
    ASSERT_LE(box.left + box.width, 400);
    const double area = static_cast<double>(box.height * box.width) / (300.0 * 400.0);
    const double ratio = static_cast<double>(box.width) / static_cast<double>(box.height);
    EXPECT_GE(area, 0.25 * 0.97) << seed;
    EXPECT_GE(ratio, 0.75 * 0.97) << seed;
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.03) << seed;
    const data::CropBox again = data::random_resized_crop_box(300, 400, 0.25, seed);
    EXPECT_EQ(std::vector<int64_t>({box.top, box.left, box.height, box.width}),
              std::vector<int64_t>({again.top, again.left, again.height, again.width}));
    distinct.insert({box.top, box.left, box.height, box.width});
  }
  EXPECT_GT(distinct.size(), 190u);
  // No crop of a 1000x10 strip has an allowed ratio: the central 13x10 (ratio 3/4) instead.
  const data::CropBox strip = data::random_resized_crop_box(1000, 10, 0.08, 3);
  EXPECT_EQ(std::vector<int64_t>({strip.top, strip.left, strip.height, strip.width}),
            std::vector<int64_t>({493, 0, 13, 10}));

  // The flip is a coin per seed: over many seeds about half the outputs are mirrored.
  torch::Tensor image = torch::zeros({3, 8, 8}, torch::kUInt8);
  image.narrow(2, 0, 4).fill_(255);  // left half white
  data::ImageTransform t;
  t.image_size = 8;
  t.min_crop_scale = 1.0;  // the whole image (ratio 1), so only the flip changes it
  t.random = true;
  int mirrored = 0;
  torch::Tensor out = torch::empty({3, 8, 8}, torch::kUInt8);
  for (uint64_t seed = 0; seed < 100; ++seed) {
    data::transform_image(image, t, seed, out);
    if (out[0][0][7].item<int>() == 255) ++mirrored;
  }
  EXPECT_GT(mirrored, 30);
  EXPECT_LT(mirrored, 70);
  t.horizontal_flip = false;
  data::transform_image(image, t, 1, out);
  EXPECT_TRUE(torch::equal(out, image));
}

/// A file of raw uint8 pixels as a tensor of `shape`.
torch::Tensor read_pixels(const std::string& path, const std::vector<int64_t>& shape) {
  std::string bytes = read_bytes(path);
  torch::Tensor t = torch::empty(shape, torch::kUInt8);
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), t.numel()) << path;
  if (static_cast<int64_t>(bytes.size()) == t.numel())
    std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

// The pixels the Python peers train on: Pillow's decoding, torchvision's Resize + CenterCrop and
// resized_crop, on files Pillow wrote: JPEG (RGB, grayscale, Photoshop-style CMYK, both
// orientations) and PNG (RGB, RGBA, grayscale, palette, and one named .JPEG, like ImageNet's),
// and on PNGs whose stored values libpng alone would change: gAMA, sRGB and iCCP chunks, 16-bit
// samples, palettes with tRNS, grey with alpha, 1-bit, Adam7. The pixels expected are Pillow's
// but for 16-bit grey, which Pillow clips at 255: its top byte (see make_image_fixtures.py).
TEST(ImageFolder, GivesThePixelsPillowAndTorchvisionGive) {
  const FixtureFiles& fixtures = python_fixtures("make_image_fixtures.py");
  ASSERT_EQ(fixtures.status, 0) << fixtures.command;
  const std::string dir = fixtures.dir.string();
  const json index = json::parse(read_bytes(dir + "/index.json"));
  ASSERT_EQ(index.size(), 22u);
  data::ImageTransform eval;  // torchvision's defaults: Resize(256), CenterCrop(224)
  for (const json& entry : index) {
    const std::string name = entry["name"];
    const int64_t h = entry["height"];
    const int64_t w = entry["width"];
    const std::string file = dir + "/" + entry["file"].get<std::string>();
    if (entry["file"].get<std::string>().find(".png") != std::string::npos || name == "disguised") {
      if (!data::png_supported()) {  // a build without libpng says so, naming the file
        const std::string message = data_error_of([&] { data::read_image(file); });
        EXPECT_NE(message.find(file + ": this advft was built without libpng"), std::string::npos)
            << message;
        continue;
      }
    }
    const torch::Tensor ours = data::read_image(file);
    const torch::Tensor pillow =
        read_pixels(dir + "/" + name + ".decoded", {h, w, 3}).permute({2, 0, 1});
    // JPEG: both are libjpeg-turbo with the accurate DCT; PNG is lossless: the same bytes.
    EXPECT_TRUE(torch::equal(ours, pillow))
        << name << ": decoded pixels differ by up to "
        << (ours.to(torch::kInt) - pillow.to(torch::kInt)).abs().max().item<int>();

    // Resizing: LibTorch's antialiased bilinear filter in float against Pillow's fixed-point one.
    const auto expect_close = [&](const torch::Tensor& got, const std::string& file) {
      const torch::Tensor want = read_pixels(dir + "/" + file, {3, 224, 224});
      const torch::Tensor diff = (got.to(torch::kInt) - want.to(torch::kInt)).abs();
      EXPECT_LE(diff.max().item<int>(), 2) << file;
      EXPECT_LT(diff.to(torch::kFloat).mean().item<float>(), 0.3) << file;
    };
    torch::Tensor evaluated = torch::empty({3, 224, 224}, torch::kUInt8);
    data::transform_image(ours, eval, 0, evaluated);
    expect_close(evaluated, name + ".eval");
    const json& box = entry["box"];
    expect_close(data::resized_crop(ours, {box[0], box[1], box[2], box[3]}, 224), name + ".crop");
  }
}

/// root/<split>/<class>/<n>.JPEG: class c's images are one grey level, 40 * (c + 1), of
/// `size` x (size + 8) pixels, so a decoded batch tells its labels.
void write_image_folder(const std::string& root, const std::string& split, int classes,
                        int per_class, int64_t size) {
  for (int c = 0; c < classes; ++c) {
    const int level = 40 * (c + 1);
    for (int n = 0; n < per_class; ++n) {
      write_bytes(
          root + "/" + split + "/class" + std::to_string(c) + "/" + std::to_string(n) + ".JPEG",
          encode_jpeg(solid(size, size + 8, level, level, level), TJPF_RGB));
    }
  }
}

TEST(ImageFolder, WalksFoldersInTorchvisionsOrder) {
  TempDir tmp;
  const std::string root = tmp.file("train");
  const std::string jpeg = encode_jpeg(solid(8, 8, 1, 2, 3), TJPF_RGB);
  for (const char* path :
       {"b/z.jpeg", "a/x2.jpg", "a/x1.JPEG", "a/sub/y.jpg", "a/sub-x/w.jpg", "a/sub/deep/v.jpg"})
    write_bytes(root + "/" + path, jpeg);
  write_bytes(root + "/a/README.txt", "not an image: passed over");
  EXPECT_EQ(data::image_folder_classes(root), (std::vector<std::string>{"a", "b"}));
  const data::Dataset d =
      data::read_image_folder(root, {"a", "b"}, data::ImageTransform(), "image_folder");
  ASSERT_TRUE(d.files);
  std::vector<std::string> relative;
  for (const auto& p : d.files->paths)
    relative.push_back(p.substr(root.size() + 1));
  // sorted(os.walk(...)) puts "a/sub-x" between "a/sub" and "a/sub/deep" ('-' before '/').
  EXPECT_EQ(relative, (std::vector<std::string>{"a/x1.JPEG", "a/x2.jpg", "a/sub/y.jpg",
                                                "a/sub-x/w.jpg", "a/sub/deep/v.jpg", "b/z.jpeg"}));
  EXPECT_TRUE(torch::equal(d.labels, torch::tensor({0, 0, 0, 0, 0, 1}, torch::kLong)));
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_EQ(d.image_shape(), (std::vector<int64_t>{3, 224, 224}));
  EXPECT_FALSE(d.in_memory());
}

TEST(ImageFolder, RefusesWhatItCannotReadNamingTheFileOrFolder) {
  TempDir tmp;
  const std::string root = tmp.file("data");
  const std::string jpeg = encode_jpeg(solid(8, 8, 1, 2, 3), TJPF_RGB);
  std::string message = data_error_of([&] { data::image_folder_classes(root + "/train"); });
  EXPECT_NE(message.find(root + "/train: no such folder"), std::string::npos) << message;
  // ImageNet's validation set as it comes: one flat folder of images.
  write_bytes(root + "/flat/ILSVRC2012_val_00000001.JPEG", jpeg);
  write_bytes(root + "/flat/ILSVRC2012_val_00000002.JPEG", jpeg);
  message = data_error_of([&] { data::image_folder_classes(root + "/flat"); });
  EXPECT_NE(message.find(root + "/flat: holds no class folders"), std::string::npos) << message;
  EXPECT_NE(message.find("its 2 images lie loose"), std::string::npos) << message;

  write_bytes(root + "/train/cat/1.jpg", jpeg);
  write_bytes(root + "/train/dog/1.bmp", "BM");
  message = data_error_of([&] {
    data::read_image_folder(root + "/train", {"cat", "dog"}, data::ImageTransform(), "imagenet");
  });
  EXPECT_NE(message.find("dog/1.bmp: only JPEG and PNG images are read"), std::string::npos)
      << message;

  write_bytes(root + "/val/cat/2.jpg", jpeg);
  write_bytes(root + "/val/cow/2.jpg", jpeg);
  message = data_error_of([&] {
    data::read_image_folder(root + "/val", {"cat", "dog"}, data::ImageTransform(), "imagenet");
  });
  EXPECT_NE(message.find("differ from the training set's"), std::string::npos) << message;
  EXPECT_NE(message.find("\"cow\" is here only"), std::string::npos) << message;

  write_bytes(root + "/empty/cat/notes.txt", "");
  message = data_error_of([&] {
    data::read_image_folder(root + "/empty", {"cat"}, data::ImageTransform(), "imagenet");
  });
  EXPECT_NE(message.find("empty/cat: class folder without images"), std::string::npos) << message;

  write_bytes(root + "/broken/cat/1.jpg", "\xff\xd8\xff garbage");
  const data::Dataset broken =
      data::read_image_folder(root + "/broken", {"cat"}, data::ImageTransform(), "imagenet");
  data::BatchLoader loader(broken, 1, false, false, 0, torch::kCPU);
  message = data_error_of([&] { loader.batch(0, 0); });
  EXPECT_NE(message.find("broken/cat/1.jpg"), std::string::npos) << message;
}

/// The data settings of a small image folder at `dir`: 16x16 inputs out of 18-pixel resizes.
config::DataConfig folder_config(const std::string& dir, const std::string& dataset,
                                 int64_t val_size) {
  config::DataConfig cfg;
  cfg.dataset = dataset;
  cfg.dir = dir;
  cfg.val_size = val_size;
  cfg.image_size = 16;
  cfg.resize_size = 18;
  return cfg;
}

TEST(ImageFolder, BatchesKeepImagesWithTheirLabelsAndRepeatPerSeed) {
  TempDir tmp;
  write_image_folder(tmp.path().string(), "train", 3, 12, 20);
  write_image_folder(tmp.path().string(), "val", 3, 2, 20);
  const config::DataConfig cfg = folder_config(tmp.path().string(), "imagenet", 6);
  const data::DataSplits splits = data::load_splits(cfg);
  EXPECT_EQ(splits.train.size(), 30);
  EXPECT_EQ(splits.val.size(), 6);
  EXPECT_EQ(splits.test.size(), 6);
  EXPECT_EQ(splits.train.num_classes, 3);
  EXPECT_TRUE(splits.train.files->transform.random);
  EXPECT_FALSE(splits.val.files->transform.random);
  EXPECT_FALSE(splits.test.files->transform.random);
  // "Only N images" of a folder sorted by class: N spread over every class, not the first ones.
  const data::Dataset sampled = data::sample(splits.test, 3);
  EXPECT_TRUE(torch::equal(sampled.labels, torch::tensor({0, 1, 2}, torch::kLong)))
      << sampled.labels;
  config::DataConfig limited = cfg;
  limited.train_limit = 6;
  const torch::Tensor few = data::load_splits(limited).train.labels;
  EXPECT_EQ(few.numel(), 6);
  EXPECT_EQ(few.bincount().gt(0).sum().item<int64_t>(), 3) << few;
  EXPECT_EQ(data::resolve_placement("auto", splits.train, torch::kCPU), data::Placement::kHost);
  try {
    data::resolve_placement("device", splits.train, torch::kCPU);
    ADD_FAILURE() << "placement device accepted for an image folder";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.placement = \"device\""), std::string::npos);
  }

  auto epoch_batches = [&](int64_t epoch) {
    data::BatchLoader loader(splits.train, 8, /*shuffle=*/true, /*drop_last=*/true, 5, torch::kCPU,
                             data::Placement::kDevice);
    EXPECT_EQ(loader.batches_per_epoch(), 3);
    std::vector<data::Batch> batches;
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b)
      batches.push_back(loader.batch(epoch, b));
    return batches;
  };
  const auto first = epoch_batches(0);
  for (const auto& batch : first) {
    ASSERT_EQ(batch.images.sizes(), (std::vector<int64_t>{8, 3, 16, 16}));
    // Each image is its class's grey level, whatever crop and flip it got.
    const torch::Tensor level = batch.images.mean({1, 2, 3}) * 255.0;
    const torch::Tensor expected = (batch.labels.to(torch::kFloat) + 1) * 40.0;
    EXPECT_LE((level - expected).abs().max().item<float>(), 3.0) << level << batch.labels;
  }
  const auto again = epoch_batches(0);
  const auto next = epoch_batches(1);
  bool same_order = true;
  for (size_t b = 0; b < first.size(); ++b) {
    EXPECT_TRUE(torch::equal(first[b].images, again[b].images)) << "batch " << b;
    EXPECT_TRUE(torch::equal(first[b].labels, again[b].labels)) << "batch " << b;
    same_order = same_order && torch::equal(first[b].labels, next[b].labels);
  }
  EXPECT_FALSE(same_order);

  // What a resumed run relies on: a batch is the same pixels whatever was read before it, here
  // asked for first, out of order, and again after the read-ahead moved on.
  data::BatchLoader resumed(splits.train, 8, true, true, 5, torch::kCPU, data::Placement::kHost);
  for (const auto& [epoch, index] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {0, 1}, {1, 2}}) {
    const data::Batch got = resumed.batch(epoch, index);
    const data::Batch& want = (epoch == 0 ? first : next)[static_cast<size_t>(index)];
    EXPECT_TRUE(torch::equal(got.images, want.images)) << epoch << "," << index;
    EXPECT_TRUE(torch::equal(got.labels, want.labels)) << epoch << "," << index;
  }
  // Its first batch, at least, had to be waited for: the decode had only just begun.
  EXPECT_GT(resumed.input_wait_seconds(), 0.0);
}

TEST(ImageFolder, PrefetchesTheSameBatchesOntoTheGpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir tmp;
  write_image_folder(tmp.path().string(), "train", 2, 10, 20);
  write_image_folder(tmp.path().string(), "val", 2, 1, 20);
  const config::DataConfig cfg = folder_config(tmp.path().string(), "image_folder", 0);
  const data::DataSplits splits = data::load_splits(cfg);
  data::BatchLoader on_cpu(splits.train, 4, true, true, 3, torch::kCPU, data::Placement::kHost);
  data::BatchLoader on_gpu(splits.train, 4, true, true, 3, torch::kCUDA, data::Placement::kHost);
  for (int64_t b = 0; b < on_cpu.batches_per_epoch(); ++b) {
    const data::Batch want = on_cpu.batch(1, b);
    const data::Batch got = on_gpu.batch(1, b);
    ASSERT_TRUE(got.images.is_cuda());
    EXPECT_TRUE(torch::equal(got.images.cpu(), want.images)) << b;
    EXPECT_TRUE(torch::equal(got.labels.cpu(), want.labels)) << b;
  }
}

TEST(ImageFolder, FinetunesAndEvaluatesEndToEnd) {
  TempDir tmp;
  const std::string data_dir = tmp.file("imagenet");
  write_image_folder(data_dir, "train", 2, 20, 24);
  write_image_folder(data_dir, "val", 2, 5, 24);
  json config = json::parse(R"({
    "model": {"arch": "preact_resnet", "blocks": [1], "width": 8, "num_classes": 2,
              "input_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    "data": {"dataset": "imagenet", "val_size": 8, "image_size": 16, "resize_size": 20,
             "min_crop_scale": 0.35},
    "attack": {"eps": "4/255", "step_size": "2/255", "steps": 2},
    "train": {"epochs": 2, "batch_size": 8, "log_every": 1, "val_batch_size": 8,
              "val_attack": {"eps": "4/255", "step_size": "2/255", "steps": 2}},
    "eval": {"batch_size": 5, "attacks": ["pgd:steps=2"]},
    "threads": 2
  })");
  config["data"]["dir"] = data_dir;
  const std::string config_path = tmp.file("imagenet.json");
  write_bytes(config_path, config.dump(2));

  // A clean model to start from, then the adversarial fine-tune.
  const std::string pre = tmp.file("pre");
  RunResult r = run_advft("train --config " + config_path + " --out " + pre +
                          " --set train.adversarial=false --epochs 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("32 images of imagenet are decoded from their files"), std::string::npos)
      << r.output;
  const std::string run = tmp.file("run");
  r = run_advft("finetune --config " + config_path + " --checkpoint " + pre +
                "/last.safetensors --out " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json results = json::parse(read_bytes(run + "/results.json"));
  EXPECT_EQ(results["steps"], 8);  // 32 training images / 8, two epochs
  EXPECT_NE(r.output.find("the training steps waited"), std::string::npos) << r.output;
  int epochs = 0;
  for (const auto& record : io::read_jsonl(run + "/metrics.jsonl")) {
    if (record["type"] != "epoch") continue;
    ++epochs;
    EXPECT_GE(record["input_wait_seconds"].get<double>(), 0.0);
    EXPECT_LE(record["input_wait_seconds"].get<double>(), record["train_seconds"].get<double>());
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_EQ(json::parse(read_bytes(run + "/config.json"))["data"]["image_size"], 16);

  // eval takes the data set, its folder and its sizes from the checkpoint.
  const std::string out = tmp.file("eval.json");
  r = run_advft("eval --checkpoint " + run + "/last.safetensors --json " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json ev = json::parse(read_bytes(out));
  EXPECT_EQ(ev["total"], 10);
  EXPECT_EQ(ev["dataset"], "imagenet");

  // A model for another input size is told which key to change.
  r = run_advft("eval --checkpoint " + run + "/last.safetensors --set data.image_size=20");
  EXPECT_EQ(r.exit_code, kExitData) << r.output;
  EXPECT_NE(r.output.find("set data.image_size"), std::string::npos) << r.output;
}

// `advft bench --data`: the input pipeline's rate beside the AT step's, and whether it keeps up.
TEST(ImageFolder, BenchTimesTheInputBesideTheModel) {
  TempDir tmp;
  write_image_folder(tmp.path().string(), "train", 2, 6, 40);
  const BenchRun b = run_bench(
      "--model preact_resnet --input-size 16 --batch 4 --attack pgd:steps=1 --warmup 1 "
      "--iterations 3 --loops at,input --device cpu --threads 2 --data " +
      tmp.path().string());
  ASSERT_EQ(b.run.exit_code, 0) << b.run.output;
  EXPECT_NE(b.run.output.find("input: decode + crop, 2 threads"), std::string::npos)
      << b.run.output;
  EXPECT_NE(b.run.output.find("the AT step"), std::string::npos) << b.run.output;  // the verdict
  const json& input = b.json["input"];
  EXPECT_GT(input["images_per_s"].get<double>(), 0.0);
  EXPECT_EQ(input["images"], 12);
  EXPECT_EQ(input["dir"], tmp.path().string() + "/train");
  EXPECT_FALSE(b.json.contains("eval"));

  RunResult r = run_advft("bench --loops input --device cpu");
  EXPECT_EQ(r.exit_code, kExitUsage) << r.output;
  EXPECT_NE(r.output.find("--loops input: input times an image folder: pass --data DIR"),
            std::string::npos)
      << r.output;
  r = run_advft("bench --loops at --device cpu --data " + tmp.path().string());
  EXPECT_EQ(r.exit_code, kExitUsage) << r.output;
  r = run_advft("bench --loops input --batch 64 --device cpu --data " + tmp.path().string());
  EXPECT_EQ(r.exit_code, kExitData) << r.output;
  EXPECT_NE(r.output.find("12 images, fewer than one batch of 64"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace advft::testing

#else

// A build without libjpeg-turbo (a GPU image may lack it) still builds and runs; asked to read
// a JPEG, it says how to get one that can.
TEST(Jpeg, ABuildWithoutLibjpegTurboSaysHowToGetOne) {
  EXPECT_FALSE(advft::data::jpeg_supported());
  try {
    advft::data::decode_jpeg("\xff\xd8\xff", "x/cat.JPEG");
    ADD_FAILURE() << "decoded without a decoder";
  } catch (const advft::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("x/cat.JPEG: this advft was built without libjpeg-turbo"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("install libturbojpeg0-dev"), std::string::npos);
  }
}

#endif
