// The fused ops' CUDA kernels: the GPU side of src/kernels/fused.rs, with its
// formulas, in f32. build.rs compiles this file to PTX when promot is built
// with `--features cuda`; src/kernels/cuda.rs launches the kernels on candle's
// stream.
//
// Row kernels run one block of ROW_THREADS threads per row (grid = rows) and
// reduce across the block; a row's elements are visited at a stride of the
// block, so reads are coalesced. n rows, d (or v classes) elements a row.

#include <math.h>

#define ROW_THREADS 256
#define WARPS (ROW_THREADS / 32)

struct Sum {
    __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
    static constexpr float identity = 0.0f;
};

struct Max {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
    static constexpr float identity = -INFINITY;
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The block's reduction (sum or max) of v, returned to every thread. The first
// barrier lets an earlier call's readers of `scratch` finish before it is
// written again.
template <typename Op>
__device__ float block_reduce(float v, float* scratch, Op op) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_reduce(lane < WARPS ? scratch[lane] : Op::identity, op);
}

__device__ float block_sum(float v, float* scratch) { return block_reduce(v, scratch, Sum()); }

__device__ float block_max(float v, float* scratch) { return block_reduce(v, scratch, Max()); }

// The row's max and Σ exp(x - max).
__device__ void row_max_sum_exp(const float* x, int d, float* scratch, float* max_out, float* sum_out) {
    float m = -INFINITY;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) m = fmaxf(m, x[j]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) s += expf(x[j] - m);
    *max_out = m;
    *sum_out = block_sum(s, scratch);
}

// ---------------------------------------------------------------- softmax

// y = exp(x - max x) / Σ exp(x - max x)
extern "C" __global__ void promot_softmax(const float* x, float* y, int d) {
    __shared__ float scratch[WARPS];
    const size_t row = (size_t)blockIdx.x * d;
    float m, s;
    row_max_sum_exp(x + row, d, scratch, &m, &s);
    const float inv = 1.0f / s;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) y[row + j] = expf(x[row + j] - m) * inv;
}

// dx = y ⊙ (g - Σ g ⊙ y)
extern "C" __global__ void promot_softmax_grad(const float* y, const float* g, float* dx, int d) {
    __shared__ float scratch[WARPS];
    const size_t row = (size_t)blockIdx.x * d;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) dot += y[row + j] * g[row + j];
    dot = block_sum(dot, scratch);
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) dx[row + j] = y[row + j] * (g[row + j] - dot);
}

// ---------------------------------------------------------------- rms_norm

// r = 1 / sqrt(mean(x²) + eps) of the block's row.
__device__ float row_inv_rms(const float* x, int d, float eps, float* scratch) {
    float ss = 0.0f;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) ss += x[j] * x[j];
    ss = block_sum(ss, scratch);
    return 1.0f / sqrtf(ss / (float)d + eps);
}

// y = x r w
extern "C" __global__ void promot_rms_norm(const float* x, const float* w, float* y, int d, float eps) {
    __shared__ float scratch[WARPS];
    const size_t row = (size_t)blockIdx.x * d;
    const float r = row_inv_rms(x + row, d, eps, scratch);
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) y[row + j] = x[row + j] * r * w[j];
}

// dx = r (g ⊙ w - x r² mean(g ⊙ w ⊙ x))
extern "C" __global__ void promot_rms_norm_grad_x(const float* x, const float* w, const float* g, float* dx, int d,
                                                  float eps) {
    __shared__ float scratch[WARPS];
    const size_t row = (size_t)blockIdx.x * d;
    const float r = row_inv_rms(x + row, d, eps, scratch);
    float gwx = 0.0f;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) gwx += g[row + j] * w[j] * x[row + j];
    gwx = block_sum(gwx, scratch);
    const float k = r * r * gwx / (float)d;
    for (int j = threadIdx.x; j < d; j += ROW_THREADS) dx[row + j] = r * (g[row + j] * w[j] - x[row + j] * k);
}

// r per row, for the weight's gradient below.
extern "C" __global__ void promot_inv_rms(const float* x, float* r, int d, float eps) {
    __shared__ float scratch[WARPS];
    const float v = row_inv_rms(x + (size_t)blockIdx.x * d, d, eps, scratch);
    if (threadIdx.x == 0) r[blockIdx.x] = v;
}

// dw = Σ_rows g ⊙ x r. A thread owns one column of a block of GRAD_W_ROWS rows
// (grid: column blocks x row blocks) and adds its partial sum into dw, which
// starts at zero.
#define GRAD_W_ROWS 64
extern "C" __global__ void promot_rms_norm_grad_w(const float* x, const float* g, const float* r, float* dw, int n,
                                                  int d) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    const int first = blockIdx.y * GRAD_W_ROWS;
    const int last = min(n, first + GRAD_W_ROWS);
    float acc = 0.0f;
    for (int i = first; i < last; i++) acc += g[(size_t)i * d + j] * x[(size_t)i * d + j] * r[i];
    atomicAdd(dw + j, acc);
}

// ---------------------------------------------------------------- cross-entropy

// ℓ = (1 - ε)(lse(x) - x_y) + ε (lse(x) - mean x), one number a row. A target
// outside the v classes gives NaN (the CPU side's error; the trainer stops on
// a non-finite loss): checking it here would cost a copy to the host.
extern "C" __global__ void promot_cross_entropy(const float* x, const unsigned int* targets, float* loss, int v,
                                                float eps) {
    __shared__ float scratch[WARPS];
    const size_t row = (size_t)blockIdx.x * v;
    float m, s;
    row_max_sum_exp(x + row, v, scratch, &m, &s);
    float sum = 0.0f;
    if (eps > 0.0f) {
        for (int j = threadIdx.x; j < v; j += ROW_THREADS) sum += x[row + j];
        sum = block_sum(sum, scratch);
    }
    if (threadIdx.x == 0) {
        const unsigned int y = targets[blockIdx.x];
        const float lse = m + logf(s);
        if (y >= (unsigned int)v) {
            loss[blockIdx.x] = NAN;
        } else {
            const float nll = lse - x[row + y];
            loss[blockIdx.x] = eps > 0.0f ? (1.0f - eps) * nll + eps * (lse - sum / (float)v) : nll;
        }
    }
}

// dx = g_i (softmax(x_i) - (1 - ε) onehot(y_i) - ε / v)
extern "C" __global__ void promot_cross_entropy_grad(const float* x, const unsigned int* targets, const float* g,
                                                     float* dx, int v, float eps) {
    __shared__ float scratch[WARPS];
    const size_t row = (size_t)blockIdx.x * v;
    float m, s;
    row_max_sum_exp(x + row, v, scratch, &m, &s);
    const float gi = g[blockIdx.x];
    const float scale = gi / s, smooth = gi * eps / (float)v;
    const unsigned int y = targets[blockIdx.x];
    for (int j = threadIdx.x; j < v; j += ROW_THREADS) {
        float value = scale * expf(x[row + j] - m) - smooth;
        if ((unsigned int)j == y) value -= gi * (1.0f - eps);
        dx[row + j] = value;
    }
}
