//! How glace writes what it produces, one mechanism for every command:
//!
//! - before any work, [`Plan::check`] resolves every input and output (canonical paths,
//!   symbolic links followed) and refuses an output that is an input or lies inside an input
//!   folder, an input inside an output folder that would be replaced, two outputs that collide,
//!   an existing output without `--force`, and an output whose folder does not exist. An input
//!   folder is what its files resolve to: every link inside it (a scene whose images link into
//!   the user's capture) adds the file or folder it leads to as an input of its own;
//! - outputs are built under a temporary sibling name ([`temp_sibling`], recognisable:
//!   `.<name>.glace-partial-<pid>`) and put in place by [`replace`], which renames an existing
//!   target aside first, so that at every instant either the old or the new output is complete;
//! - temporaries a killed run left behind are removed by the next run that writes the same
//!   output ([`remove_stale`]).
//!
//! Knows nothing of scenes, maps or networks.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a plan of inputs and outputs cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The option or argument of the output (or input) at fault.
    pub option: String,
    /// What is wrong, both paths named.
    pub message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.message)
    }
}

impl std::error::Error for Refused {}

/// Whether an output is one file or a folder that is replaced as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One file.
    File,
    /// A folder.
    Dir,
}

#[derive(Clone, Debug)]
struct Entry {
    option: String,
    path: PathBuf,
    resolved: PathBuf,
    kind: Kind,
    force: bool,
    /// Found as a link inside an input folder: `path` is the link, `resolved` what it leads to.
    linked: bool,
}

impl Entry {
    /// How a message names the input: its path, and for what a link leads to, the link too.
    fn shown(&self) -> String {
        if self.linked {
            format!("{} (through the link {})", self.resolved.display(), self.path.display())
        } else {
            self.path.display().to_string()
        }
    }
}

/// The most entries an input folder's walk visits: a tree beyond it is refused rather than
/// checked in part.
pub const MAX_WALKED: usize = 4_000_000;

/// The inputs and outputs of one command.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    inputs: Vec<Entry>,
    outputs: Vec<Entry>,
    /// An input folder too large to walk.
    too_large: Option<PathBuf>,
}

/// `path` with symbolic links followed: canonical when it exists, else its canonical parent
/// joined with its name (a missing parent is kept as given; `check` refuses it).
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match parent.canonicalize() {
        Ok(p) => p.join(name),
        Err(_) => path.to_path_buf(),
    }
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Something the command reads (a file or a folder), named by its option. A folder is
    /// walked, and what each link inside it leads to (files, folders, links of links) becomes an
    /// input too, so that no output can replace a file that an input only links to.
    pub fn input(mut self, option: &str, path: &Path) -> Self {
        let kind = if path.is_dir() { Kind::Dir } else { Kind::File };
        let root = Entry {
            option: option.into(),
            path: path.into(),
            resolved: resolve(path),
            kind,
            force: false,
            linked: false,
        };
        if kind == Kind::Dir {
            self.walk_links(&root);
        }
        self.inputs.push(root);
        self
    }

    /// Adds the targets of the links under the input folder `root`, following linked folders
    /// (each folder once, so cycles end).
    fn walk_links(&mut self, root: &Entry) {
        let mut seen = std::collections::HashSet::new();
        seen.insert(root.resolved.clone());
        let mut todo = vec![root.path.clone()];
        let mut visited = 0usize;
        while let Some(dir) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                visited += 1;
                if visited > MAX_WALKED {
                    self.too_large = Some(root.path.clone());
                    return;
                }
                let Ok(file_type) = e.file_type() else { continue };
                let path = e.path();
                if file_type.is_dir() {
                    todo.push(path);
                } else if file_type.is_symlink() {
                    // A dangling link reads nothing; a resolvable one is an input of its own.
                    let Ok(resolved) = path.canonicalize() else { continue };
                    let is_dir = resolved.is_dir();
                    let kind = if is_dir { Kind::Dir } else { Kind::File };
                    if is_dir && seen.insert(resolved.clone()) {
                        todo.push(resolved.clone());
                    }
                    let option = root.option.clone();
                    self.inputs.push(Entry { option, path, resolved, kind, force: false, linked: true });
                }
            }
        }
    }

    /// Something the command writes; an existing one is replaced only with `force`.
    pub fn output(mut self, option: &str, path: &Path, kind: Kind, force: bool) -> Self {
        let resolved = resolve(path);
        self.outputs.push(Entry { option: option.into(), path: path.into(), resolved, kind, force, linked: false });
        self
    }

    /// Checks the rules of the crate's documentation; the first broken one is the error.
    pub fn check(&self) -> Result<(), Refused> {
        let refuse = |option: &str, message: String| Err(Refused { option: option.to_string(), message });
        if let Some(dir) = &self.too_large {
            let option = self.inputs.iter().find(|i| &i.path == dir).map_or("<input>", |i| i.option.as_str());
            return refuse(
                option,
                format!("{}: more than {MAX_WALKED} files and folders; cannot check what they link to", dir.display()),
            );
        }
        for (i, o) in self.outputs.iter().enumerate() {
            let shown = o.path.display();
            let parent = o.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return refuse(&o.option, format!("{shown}: the folder {} does not exist", parent.display()));
            }
            if o.path.file_name().is_none() {
                return refuse(&o.option, format!("{shown}: not a file or folder name"));
            }
            for input in &self.inputs {
                let input_shown = input.shown();
                if o.resolved == input.resolved {
                    return refuse(
                        &o.option,
                        format!("{shown} is also the input {input_shown} ({}): it would be overwritten", input.option),
                    );
                }
                if input.kind == Kind::Dir && o.resolved.starts_with(&input.resolved) {
                    return refuse(
                        &o.option,
                        format!("{shown} lies inside the input folder {input_shown} ({})", input.option),
                    );
                }
                if o.kind == Kind::Dir && input.resolved.starts_with(&o.resolved) {
                    return refuse(
                        &o.option,
                        format!(
                            "{shown} holds the input {input_shown} ({}), which replacing it would destroy",
                            input.option
                        ),
                    );
                }
            }
            for other in &self.outputs[..i] {
                if other.resolved == o.resolved
                    || (other.kind == Kind::Dir && o.resolved.starts_with(&other.resolved))
                    || (o.kind == Kind::Dir && other.resolved.starts_with(&o.resolved))
                {
                    return refuse(
                        &o.option,
                        format!("{shown} collides with the other output {} ({})", other.path.display(), other.option),
                    );
                }
            }
            if let Ok(meta) = std::fs::metadata(&o.path) {
                let empty_dir =
                    meta.is_dir() && std::fs::read_dir(&o.path).map(|mut d| d.next().is_none()).unwrap_or(false);
                if (o.kind == Kind::File) == meta.is_dir() {
                    let what = if meta.is_dir() { "a folder" } else { "a file" };
                    return refuse(&o.option, format!("{shown} exists and is {what}"));
                }
                if !o.force && !empty_dir {
                    return refuse(&o.option, format!("{shown} exists: pass --force to replace it"));
                }
            }
        }
        Ok(())
    }
}

const PARTIAL: &str = ".glace-partial-";
const OLD: &str = ".glace-old-";

/// Where the new version of `target` is built: a hidden sibling named after it and this process.
pub fn temp_sibling(target: &Path) -> PathBuf {
    sibling(target, PARTIAL)
}

fn sibling(target: &Path, tag: &str) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    target.with_file_name(format!(".{name}{tag}{}", std::process::id()))
}

fn remove(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Puts the finished `new` (file or folder) in place of `target`. An existing target is renamed
/// aside first and removed only once `new` is in place; if the second rename fails, the old
/// one is put back.
pub fn replace(new: &Path, target: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(target).is_err() {
        return std::fs::rename(new, target);
    }
    let aside = sibling(target, OLD);
    std::fs::rename(target, &aside)?;
    if let Err(e) = std::fs::rename(new, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(e);
    }
    // The new output is complete and in place; a leftover is removed by the next run.
    let _ = remove(&aside);
    Ok(())
}

/// Writes `bytes` to `target` under [`temp_sibling`], then [`replace`]s it into place.
pub fn write_file(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    remove_stale(target);
    let tmp = temp_sibling(target);
    let written = std::fs::write(&tmp, bytes).and_then(|_| replace(&tmp, target));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // Without /proc the owner cannot be told; leave the file (it is hidden and named).
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temporaries of `target` that runs no longer alive left behind (killed while
/// writing). Returns what it removed.
pub fn remove_stale(target: &Path) -> Vec<PathBuf> {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Vec::new() };
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}")) else { continue };
        let pid = rest.strip_prefix(PARTIAL).or_else(|| rest.strip_prefix(OLD)).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !running(pid) && remove(&e.path()).is_ok() {
                removed.push(e.path());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_would_destroy_inputs_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let scene = tmp.path().join("scene");
        std::fs::create_dir_all(scene.join("train")).unwrap();
        let map = tmp.path().join("m.glace");
        std::fs::write(&map, "map").unwrap();
        let ok = Plan::new().input("<scene>", &scene).output("--out", &tmp.path().join("p.txt"), Kind::File, false);
        assert_eq!(ok.check(), Ok(()));
        let same = Plan::new().input("<map>", &map).output("--out", &map, Kind::File, true);
        assert!(same.check().unwrap_err().message.contains("is also the input"));
        let link = tmp.path().join("link.txt");
        std::os::unix::fs::symlink(&map, &link).unwrap();
        let via_link = Plan::new().input("<map>", &map).output("--out", &link, Kind::File, true);
        assert!(via_link.check().is_err(), "a symbolic link to an input is the input");
        let inside = Plan::new().input("<scene>", &scene).output("--out", &scene.join("train/x.txt"), Kind::File, true);
        assert!(inside.check().unwrap_err().message.contains("inside the input folder"));
        let holds = Plan::new().input("<input>", &scene.join("train")).output("<out>", &scene, Kind::Dir, true);
        assert!(holds.check().unwrap_err().message.contains("holds the input"));
        let twice = Plan::new().output("<map>", &tmp.path().join("a.json"), Kind::File, false).output(
            "--log",
            &tmp.path().join("a.json"),
            Kind::File,
            false,
        );
        assert!(twice.check().unwrap_err().message.contains("collides"));
        let exists = Plan::new().output("<map>", &map, Kind::File, false);
        assert_eq!(exists.check().unwrap_err().option, "<map>");
        let nowhere = Plan::new().output("--plot", &tmp.path().join("no/such/dir/p.png"), Kind::File, false);
        assert!(nowhere.check().unwrap_err().message.contains("does not exist"));
    }

    #[test]
    fn what_links_inside_an_input_folder_lead_to_is_an_input() {
        let tmp = tempfile::tempdir().unwrap();
        // The user's capture, and a scene whose images link into it (as `glace convert` makes).
        let proj = tmp.path().join("proj");
        std::fs::create_dir_all(proj.join("images")).unwrap();
        std::fs::write(proj.join("images/x.png"), "photo").unwrap();
        std::fs::create_dir_all(proj.join("more")).unwrap();
        let scene = tmp.path().join("scene");
        std::fs::create_dir_all(scene.join("test/rgb")).unwrap();
        std::os::unix::fs::symlink(proj.join("images/x.png"), scene.join("test/rgb/x.png")).unwrap();
        // A linked folder, and a link back to the scene (a cycle the walk must end).
        std::os::unix::fs::symlink(proj.join("more"), scene.join("test/more")).unwrap();
        std::os::unix::fs::symlink(&scene, proj.join("more/back")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("gone"), scene.join("test/dangling")).unwrap();
        let plan = |out: &Path, kind| Plan::new().input("<scene>", &scene).output("<out>", out, kind, true).check();
        let e = plan(&proj, Kind::Dir).unwrap_err();
        assert!(e.message.contains("holds the input") && e.message.contains("through the link"), "{e}");
        let e = plan(&proj.join("images/x.png"), Kind::File).unwrap_err();
        assert!(e.message.contains("is also the input"), "{e}");
        let e = plan(&proj.join("more/new.txt"), Kind::File).unwrap_err();
        assert!(e.message.contains("inside the input folder"), "{e}");
        assert_eq!(plan(&proj.join("elsewhere.txt"), Kind::File), Ok(()));
        assert_eq!(plan(&tmp.path().join("out"), Kind::Dir), Ok(()));
    }

    #[test]
    fn replacing_keeps_one_complete_version_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out.txt");
        write_file(&target, b"old").unwrap();
        write_file(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // A killed run's leftovers (a pid that is not running) go; ours stay.
        let stale = tmp.path().join(".out.txt.glace-partial-4000000000");
        std::fs::write(&stale, "half").unwrap();
        let mine = temp_sibling(&target);
        std::fs::write(&mine, "in progress").unwrap();
        assert_eq!(remove_stale(&target), vec![stale.clone()]);
        assert!(!stale.exists() && mine.exists());
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A folder is swapped whole.
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a"), "1").unwrap();
        let new = temp_sibling(&dir);
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("b"), "2").unwrap();
        replace(&new, &dir).unwrap();
        assert!(dir.join("b").exists() && !dir.join("a").exists() && !new.exists());
    }
}
