//! The `agora` command line: parses arguments and hands off to the library crates.

fn main() {
    println!("agora: under construction");
}
