// The image predict.py feeds for a seed: numpy's
// `np.random.default_rng(seed).random(shape, dtype=np.float32)`, computed the way
// numpy does (SeedSequence's hash of the seed, PCG64, 24 random bits per float), so
// that predict_cc prints predict.py's predictions for the same seed.
#ifndef RULES_KERAS_MODELS_SEEDED_IMAGE_H_
#define RULES_KERAS_MODELS_SEEDED_IMAGE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace models {

class NumpyRandom {
 public:
  explicit NumpyRandom(uint32_t seed) {
    // SeedSequence(seed): its pool of 4 words mixes the seed's one uint32 word.
    uint32_t pool[4];
    uint32_t hash = kInitA;
    for (int i = 0; i < 4; ++i) pool[i] = HashMix(i == 0 ? seed : 0, &hash);
    for (int src = 0; src < 4; ++src) {
      for (int dst = 0; dst < 4; ++dst) {
        if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], &hash));
      }
    }
    // generate_state(4, uint64): 8 words, read as 4 little-endian uint64.
    uint64_t words[4];
    uint32_t state_hash = kInitB;
    for (int i = 0; i < 8; ++i) {
      uint32_t value = pool[i % 4] ^ state_hash;
      state_hash *= kMultB;
      value *= state_hash;
      value ^= value >> 16;
      if (i % 2 == 0) {
        words[i / 2] = value;
      } else {
        words[i / 2] |= static_cast<uint64_t>(value) << 32;
      }
    }
    // PCG64's seeding: state and increment from (high, low) word pairs.
    unsigned __int128 init_state = (static_cast<unsigned __int128>(words[0]) << 64) | words[1];
    unsigned __int128 init_sequence = (static_cast<unsigned __int128>(words[2]) << 64) | words[3];
    state_ = 0;
    increment_ = (init_sequence << 1) | 1;
    Step();
    state_ += init_state;
    Step();
  }

  // Generator.random(dtype=np.float32): the top 24 bits of the next uint32.
  float NextFloat() { return static_cast<float>(NextUint32() >> 8) * (1.0f / 16777216.0f); }

 private:
  static constexpr uint32_t kMultA = 0x931e8875, kMultB = 0x58f38ded;
  static constexpr uint32_t kInitA = 0x43b0d7e5, kInitB = 0x8b51f9dd;
  static constexpr uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;

  static uint32_t HashMix(uint32_t value, uint32_t* hash) {
    value ^= *hash;
    *hash *= kMultA;
    value *= *hash;
    return value ^ (value >> 16);
  }
  static uint32_t Mix(uint32_t x, uint32_t y) {
    uint32_t result = kMixMultL * x - kMixMultR * y;
    return result ^ (result >> 16);
  }
  void Step() {
    const unsigned __int128 multiplier =
        (static_cast<unsigned __int128>(2549297995355413924ULL) << 64) | 4865540595714422341ULL;
    state_ = state_ * multiplier + increment_;
  }
  uint64_t Next64() {
    Step();
    uint64_t value = static_cast<uint64_t>(state_ >> 64) ^ static_cast<uint64_t>(state_);
    unsigned rotation = static_cast<unsigned>(state_ >> 122);
    return (value >> rotation) | (value << ((64 - rotation) & 63));
  }
  // numpy hands out both halves of each 64-bit output, low half first.
  uint32_t NextUint32() {
    if (has_high_) {
      has_high_ = false;
      return high_;
    }
    uint64_t next = Next64();
    has_high_ = true;
    high_ = static_cast<uint32_t>(next >> 32);
    return static_cast<uint32_t>(next);
  }

  unsigned __int128 state_ = 0;
  unsigned __int128 increment_ = 0;
  bool has_high_ = false;
  uint32_t high_ = 0;
};

// np.random.default_rng(seed).random((count,), dtype=np.float32), flattened.
inline std::vector<float> SeededImage(uint32_t seed, size_t count) {
  NumpyRandom random(seed);
  std::vector<float> values(count);
  for (float& value : values) value = random.NextFloat();
  return values;
}

}  // namespace models

#endif  // RULES_KERAS_MODELS_SEEDED_IMAGE_H_
