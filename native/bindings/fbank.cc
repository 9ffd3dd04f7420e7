// pybind11 glue for native/include/aim_edge/fbank.h: aim_edge._native.fbank.
//
// Glue only: argument conversion, the GIL, a per-stream lock and exception mapping. Input policy
// (dtypes, shapes, documentation) lives in aim_edge/features.py.
//
// Locking rule (no deadlock with the GIL): a stream's mutex may be taken while holding the GIL,
// but the GIL is never waited for while holding the mutex, and no Python code runs under it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>

#include "aim_edge/errors.h"
#include "aim_edge/fbank.h"

namespace py = pybind11;

namespace {

// aim_edge.errors classes, imported once at module init and kept for the process lifetime.
PyObject *g_audio_input_error = nullptr;
PyObject *g_config_error = nullptr;
PyObject *g_native_error = nullptr;

struct Stream {
  explicit Stream(const aim_edge::FbankOptions &opts) : fb(opts) {}
  aim_edge::OnlineFbank fb;
  std::mutex mu;
};

std::unique_ptr<Stream> make_stream(int sample_rate, int n_mels, double frame_length_ms,
                                    double frame_shift_ms, double dither, uint64_t dither_seed,
                                    double preemph_coeff, bool remove_dc_offset, bool snip_edges,
                                    double low_freq, double high_freq, double log_floor) {
  aim_edge::FbankOptions o;
  o.sample_rate = sample_rate;
  o.n_mels = n_mels;
  o.frame_length_ms = frame_length_ms;
  o.frame_shift_ms = frame_shift_ms;
  o.dither = dither;
  o.dither_seed = dither_seed;
  o.preemph_coeff = preemph_coeff;
  o.remove_dc_offset = remove_dc_offset;
  o.snip_edges = snip_edges;
  o.low_freq = low_freq;
  o.high_freq = high_freq;
  o.log_floor = log_floor;
  return std::make_unique<Stream>(o);
}

// Returns `samples` as a C-contiguous, native-byte-order 1-D array of T (copying only when the
// layout needs it), or throws: TypeError for another dtype, AudioInputError for another shape.
// Deliberately not py::array_t<T>: its caster goes through PyArray_FromAny and cost ~0.5 us a
// call here, against ~0.1 us for these checks (the benchmark counts every call).
template <typename T>
py::array as_samples(const py::array &samples) {
  if (samples.ndim() != 1) {
    throw aim_edge::InvalidInput("expected a 1-D array of samples, got " +
                                 std::to_string(samples.ndim()) + " dimensions");
  }
  const py::dtype dt = samples.dtype();
  if (dt.num() != py::dtype::of<T>().num()) {
    throw py::type_error(std::string("expected samples of dtype ") +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " +
                         py::str(dt).cast<std::string>());
  }
  const char order = dt.byteorder();
  const bool native = order == '=' || order == '|' || order == py::dtype::of<T>().byteorder();
  if (native && (samples.flags() & py::array::c_style)) return samples;
  py::array copy = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(samples);
  if (!copy) throw std::runtime_error("could not make a contiguous copy of the samples");
  return copy;
}

void accept_float(Stream &s, const py::array &samples) {
  const py::array a = as_samples<float>(samples);
  const float *data = static_cast<const float *>(a.data());
  const int64_t n = static_cast<int64_t>(a.size());
  py::gil_scoped_release nogil;  // `a` keeps the buffer alive; it is only read
  std::lock_guard<std::mutex> lock(s.mu);
  s.fb.accept_waveform(data, n);
}

void accept_int16(Stream &s, const py::array &samples) {
  const py::array a = as_samples<int16_t>(samples);
  const int16_t *data = static_cast<const int16_t *>(a.data());
  const int64_t n = static_cast<int64_t>(a.size());
  py::gil_scoped_release nogil;
  std::lock_guard<std::mutex> lock(s.mu);
  s.fb.accept_waveform_int16(data, n);
}

py::array_t<float> pop_frames(Stream &s, int64_t n) {
  int64_t want;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    const int64_t ready = s.fb.num_frames_ready();
    want = n < 0 ? ready : std::min(n, ready);
  }
  const py::ssize_t n_mels = s.fb.n_mels();
  py::array_t<float> out({static_cast<py::ssize_t>(want), n_mels});  // allocated outside the lock
  int64_t got;
  {
    std::lock_guard<std::mutex> lock(s.mu);  // a memcpy: not worth releasing the GIL
    got = s.fb.pop_frames(want, out.mutable_data());
  }
  if (got < want) {  // another thread popped in between
    out = py::array_t<float>(out[py::slice(0, static_cast<py::ssize_t>(got), 1)]);
  }
  return out;
}

template <typename T>
T locked(Stream &s, T (*read)(const aim_edge::OnlineFbank &)) {
  std::lock_guard<std::mutex> lock(s.mu);
  return read(s.fb);
}

}  // namespace

PYBIND11_MODULE(fbank, m) {
  m.doc() = "Private pybind11 binding of the native streaming fbank (use aim_edge.features).";

  py::module_ errors = py::module_::import("aim_edge.errors");
  g_audio_input_error = py::object(errors.attr("AudioInputError")).release().ptr();
  g_config_error = py::object(errors.attr("ConfigError")).release().ptr();
  g_native_error = py::object(errors.attr("NativeError")).release().ptr();

  // Most specific first: InvalidInput derives from std::invalid_argument. pybind11's own
  // exceptions (and MemoryError for bad_alloc) go on to its default translator.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const aim_edge::InvalidInput &e) {
      py::set_error(g_audio_input_error, e.what());
    } catch (const py::builtin_exception &) {
      throw;
    } catch (const py::error_already_set &) {
      throw;
    } catch (const std::bad_alloc &) {
      throw;
    } catch (const std::invalid_argument &e) {
      py::set_error(g_config_error, e.what());
    } catch (const std::exception &e) {
      py::set_error(g_native_error, e.what());
    }
  });

  py::class_<Stream>(m, "OnlineFbank",
                     "Streaming Kaldi-compatible log-mel fbank (see aim_edge.features).")
      .def(py::init(&make_stream), py::kw_only(), py::arg("sample_rate") = 16000,
           py::arg("n_mels") = 80, py::arg("frame_length_ms") = 25.0,
           py::arg("frame_shift_ms") = 10.0, py::arg("dither") = 0.0,
           py::arg("dither_seed") = 0, py::arg("preemph_coeff") = 0.97,
           py::arg("remove_dc_offset") = true, py::arg("snip_edges") = true,
           py::arg("low_freq") = 20.0, py::arg("high_freq") = 0.0,
           py::arg("log_floor") = 1.1920928955078125e-07)
      .def("accept_waveform", &accept_float, py::arg("samples"),
           "Append float32 samples in [-1, 1] (1-D).")
      .def("accept_waveform_int16", &accept_int16, py::arg("samples"),
           "Append int16 PCM samples (1-D), scaled by 1/32768.")
      .def("pop_frames", &pop_frames, py::arg("n") = -1,
           "Pop up to n ready frames (all when n < 0) as a new (k, n_mels) float32 array.")
      .def("input_finished",
           [](Stream &s) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::mutex> lock(s.mu);
             s.fb.input_finished();
           })
      .def("reset",
           [](Stream &s) {
             std::lock_guard<std::mutex> lock(s.mu);
             s.fb.reset();
           })
      .def_property_readonly("num_frames_ready",
                             [](Stream &s) {
                               return locked<int64_t>(s, [](const aim_edge::OnlineFbank &f) {
                                 return f.num_frames_ready();
                               });
                             })
      .def_property_readonly("first_frame_index",
                             [](Stream &s) {
                               return locked<int64_t>(s, [](const aim_edge::OnlineFbank &f) {
                                 return f.first_frame_index();
                               });
                             })
      .def_property_readonly("num_samples_accepted",
                             [](Stream &s) {
                               return locked<int64_t>(s, [](const aim_edge::OnlineFbank &f) {
                                 return f.num_samples_accepted();
                               });
                             })
      .def_property_readonly("num_samples_buffered",
                             [](Stream &s) {
                               return locked<int64_t>(s, [](const aim_edge::OnlineFbank &f) {
                                 return f.num_samples_buffered();
                               });
                             })
      .def_property_readonly("is_finished",
                             [](Stream &s) {
                               return locked<bool>(s, [](const aim_edge::OnlineFbank &f) {
                                 return f.is_finished();
                               });
                             })
      .def_property_readonly("n_mels", [](Stream &s) { return s.fb.n_mels(); })
      .def_property_readonly("frame_length", [](Stream &s) { return s.fb.options().frame_length(); })
      .def_property_readonly("frame_shift", [](Stream &s) { return s.fb.options().frame_shift(); });
}
