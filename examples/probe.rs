fn main() {
    let mut c = annomask::bench::BenchConfig::default();
    let args: Vec<String> = std::env::args().collect();
    c.engines = vec![args.get(1).map_or("cpu", |s| s.as_str()).parse().unwrap()];
    if let Some(p) = args.get(2) {
        c.policy = p.parse().unwrap();
    }
    if let Some(p) = args.get(3) {
        c.size = p.parse().unwrap();
    }
    c.repeat = 10;
    let r = annomask::bench::run(&c).unwrap();
    println!("{r}");
}
