//! Optional Intel oneMKL sgemm, loaded at run time, for the CPU training step's large products.
//!
//! The written-out training step (`cpu_train.rs`) spends ~80 % of its time in GEMMs, and on
//! those shapes the gemm crate runs 10–20 % below MKL, the library PyTorch's CPU build uses.
//! Set `MENTOR_MKL` to a `libmkl_rt.so` (`scripts/setup-mkl.sh` installs PyPI's `mkl` wheel and
//! prints the path) and those GEMMs go through MKL's sequential `cblas_sgemm`, the rows split
//! across our own threads. Unset, nothing is loaded and the gemm crate does everything: mentor
//! needs no BLAS. A path that does not load is an error, not a silent fallback.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::OnceLock;

/// `cblas_sgemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;
/// `MKL_THREADING_SEQUENTIAL`: MKL starts no threads of its own (ours split the work).
const THREADING_SEQUENTIAL: c_int = 1;

/// The loaded library's sgemm.
pub struct Mkl {
    sgemm: Sgemm,
}

/// MKL when `MENTOR_MKL` names a library that loads; `None` when it is unset.
///
/// # Panics
/// When `MENTOR_MKL` is set but the library or its symbols do not load: the user asked for it.
/// Programs call [`load_requested`] first to report that as an error instead.
pub fn mkl() -> Option<&'static Mkl> {
    match load_requested() {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// Loads the library `MENTOR_MKL` names (once); `Ok(None)` when it is unset or empty.
pub fn load_requested() -> Result<Option<&'static Mkl>, String> {
    static LOADED: OnceLock<Result<Option<Mkl>, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| match std::env::var("MENTOR_MKL") {
            Ok(path) if !path.is_empty() => load(&path)
                .map(Some)
                .map_err(|e| format!("MENTOR_MKL={path}: {e}")),
            _ => Ok(None),
        })
        .as_ref()
        .map(Option::as_ref)
        .map_err(Clone::clone)
}

fn load(path: &str) -> Result<Mkl, String> {
    let c_path = CString::new(path).map_err(|_| "the path has a NUL byte".to_string())?;
    // SAFETY: dlopen/dlsym with NUL-terminated strings; the handle is never closed, so the
    // symbols stay valid for the process's life.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return Err(dl_error());
        }
        let sym = |name: &str| -> Result<*mut c_void, String> {
            let c_name = CString::new(name).expect("symbol names have no NUL");
            let p = libc::dlsym(handle, c_name.as_ptr());
            if p.is_null() {
                Err(format!("no symbol {name}: {}", dl_error()))
            } else {
                Ok(p)
            }
        };
        let set_layer: unsafe extern "C" fn(c_int) -> c_int =
            std::mem::transmute(sym("MKL_Set_Threading_Layer")?);
        set_layer(THREADING_SEQUENTIAL);
        Ok(Mkl {
            sgemm: std::mem::transmute::<*mut c_void, Sgemm>(sym("cblas_sgemm")?),
        })
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns a NUL-terminated message or null.
    unsafe {
        let e: *const c_char = libc::dlerror();
        if e.is_null() {
            "unknown dlopen error".to_string()
        } else {
            std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

impl Mkl {
    /// `c[m, n] (+)= a[m, k] · b[k, n]`: `c` row-major with row stride `c_rs`; `a` and `b`
    /// given as (pointer, row stride, column stride) with one of the two strides 1.
    ///
    /// # Safety
    /// As for `cpu_train::gemm_raw`: every element the strides reach lies in its buffer, and
    /// nobody else writes `c` during the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sgemm(
        &self,
        (m, n, k): (usize, usize, usize),
        c: *mut f32,
        c_rs: usize,
        accumulate: bool,
        a: (*const f32, usize, usize),
        b: (*const f32, usize, usize),
    ) {
        // a row-major operand is itself (ld = row stride); a column-major one is the transpose
        // of a row-major matrix (ld = column stride)
        let op = |(_, rs, cs): (*const f32, usize, usize)| -> (c_int, c_int) {
            if cs == 1 {
                (NO_TRANS, rs.max(1) as c_int)
            } else {
                assert_eq!(rs, 1, "an operand needs one unit stride");
                (TRANS, cs as c_int)
            }
        };
        let ((ta, lda), (tb, ldb)) = (op(a), op(b));
        (self.sgemm)(
            ROW_MAJOR,
            ta,
            tb,
            m as c_int,
            n as c_int,
            k as c_int,
            1.0,
            a.0,
            lda,
            b.0,
            ldb,
            if accumulate { 1.0 } else { 0.0 },
            c,
            c_rs.max(1) as c_int,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opt-in (`MENTOR_MKL` set): every transpose combination, with and without accumulation,
    /// against a plain triple loop.
    #[test]
    fn sgemm_matches_the_definition() {
        let Some(mkl) = mkl() else {
            mentor_data::skip::skip_test(
                "mkl::sgemm_matches_the_definition",
                "MENTOR_MKL unset: MKL is not used, nothing to check",
                "MENTOR_REQUIRE_MKL",
            );
            return;
        };
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 2.0 - i as f32 * 0.25).collect();
        let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..k * n).map(|i| b[(i % k) * n + i / k]).collect();
        let want = |i: usize, j: usize| (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
        for (av, bv) in [
            ((a.as_ptr(), k, 1), (b.as_ptr(), n, 1)),
            ((at.as_ptr(), 1, m), (b.as_ptr(), n, 1)),
            ((a.as_ptr(), k, 1), (bt.as_ptr(), 1, k)),
            ((at.as_ptr(), 1, m), (bt.as_ptr(), 1, k)),
        ] {
            for accumulate in [false, true] {
                let mut c = vec![1f32; m * n];
                // SAFETY: the strides describe the buffers above.
                unsafe { mkl.sgemm((m, n, k), c.as_mut_ptr(), n, accumulate, av, bv) };
                for i in 0..m {
                    for j in 0..n {
                        let w = want(i, j) + if accumulate { 1.0 } else { 0.0 };
                        assert!((c[i * n + j] - w).abs() < 1e-4, "c[{i},{j}]");
                    }
                }
            }
        }
    }
}
