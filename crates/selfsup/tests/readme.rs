//! The README a newcomer opens: on one screen of scrolling, with the two commands and the main
//! job before anything else, and pointing only at files inside the repository.
use std::path::Path;

#[test]
fn the_readme_is_short_and_starts_with_the_two_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(text.len() <= 12 * 1024, "README.md is {} bytes", text.len());
    let first_screen: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
    for must in [
        "./scripts/quickstart.sh",
        "./scripts/test.sh",
        "**The main job**",
    ] {
        assert!(
            first_screen.contains(must),
            "{must} is not in the first 40 lines"
        );
    }
    // Every docs/ file it names exists.
    for word in text.split(['`', ' ', '(', ')', ',']) {
        if word.starts_with("docs/") && word.ends_with(".md") {
            assert!(
                root.join(word).is_file(),
                "README names {word}, which does not exist"
            );
        }
    }
    assert!(
        !text.contains("DESIGN.md"),
        "the design notes are not part of the repository"
    );
}
