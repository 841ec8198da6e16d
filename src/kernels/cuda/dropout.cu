// Dropout on the GPU from the CPU's random stream (src/kernels/dropout.rs).
// The CPU keeps element i of a tensor when word start + i of a ChaCha8 stream
// (rand_chacha's ChaCha8Rng: 8 rounds, 64-bit block counter, stream 0) is
// below a threshold. ChaCha is a function of (key, block counter), so each
// thread here computes one 16-word block of that stream and applies the words
// that fall on the tensor: the GPU drops exactly the elements the CPU would,
// draws nothing on the host and uploads no mask. The backward pass runs the
// same kernel on the gradient (same key and start, same mask).

#define BLOCK_THREADS 256

__device__ __forceinline__ unsigned int rotl(unsigned int v, int c) { return (v << c) | (v >> (32 - c)); }

__device__ __forceinline__ void quarter(unsigned int* s, int a, int b, int c, int d) {
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12);
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7);
}

// Block `counter` of ChaCha8 under the 8-word little-endian key, stream 0.
__device__ void chacha8_block(const unsigned int* key, unsigned long long counter, unsigned int* out) {
    unsigned int input[16] = {
        0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u,
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
        (unsigned int)counter, (unsigned int)(counter >> 32), 0u, 0u,
    };
    for (int i = 0; i < 16; i++) out[i] = input[i];
    for (int round = 0; round < 4; round++) {
        quarter(out, 0, 4, 8, 12); quarter(out, 1, 5, 9, 13); quarter(out, 2, 6, 10, 14); quarter(out, 3, 7, 11, 15);
        quarter(out, 0, 5, 10, 15); quarter(out, 1, 6, 11, 12); quarter(out, 2, 7, 8, 13); quarter(out, 3, 4, 9, 14);
    }
    for (int i = 0; i < 16; i++) out[i] += input[i];
}

// y[i] = x[i] * scale where word start + i is below threshold, else 0, for
// i < n. Thread t covers the stream's block start / 16 + t.
extern "C" __global__ void promot_dropout(const float* x, float* y, unsigned long long n, unsigned long long start,
                                          unsigned int k0, unsigned int k1, unsigned int k2, unsigned int k3,
                                          unsigned int k4, unsigned int k5, unsigned int k6, unsigned int k7,
                                          unsigned int threshold, float scale) {
    const unsigned long long block = start / 16 + (unsigned long long)blockIdx.x * BLOCK_THREADS + threadIdx.x;
    const unsigned long long first = block * 16, end = start + n;
    if (first >= end) return;
    const unsigned int key[8] = {k0, k1, k2, k3, k4, k5, k6, k7};
    unsigned int words[16];
    chacha8_block(key, block, words);
    for (int w = 0; w < 16; w++) {
        const unsigned long long at = first + w;
        if (at < start || at >= end) continue;
        const unsigned long long i = at - start;
        y[i] = words[w] < threshold ? x[i] * scale : 0.0f;
    }
}
