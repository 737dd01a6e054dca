//! The bindings are generated from `../wit` by `wit_bindgen::generate!`.
//! cargo learns of those files only from the compiler's dep-info, by
//! absolute path; naming the directory here, relative to the package, makes
//! any change to the contract rebuild the SDK in every target directory
//! (the guests' nested builds keep their own).

fn main() {
    println!("cargo:rerun-if-changed=../wit");
}
