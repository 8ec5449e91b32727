//! User and group lookups on the host (`uzers`, i.e. NSS) or in a `--root` tree's
//! `etc/passwd` and `etc/group` (NSS would answer for the host, not the tree).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uzers::os::unix::UserExt;

/// A user account as `getpwnam` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
    /// Login shell.
    pub shell: PathBuf,
}

/// Where accounts are looked up.
#[derive(Debug, Clone)]
pub enum Accounts {
    /// The running host's user database.
    Host,
    /// The `etc/passwd` and `etc/group` files under a root directory.
    Tree(PathBuf),
}

impl Accounts {
    /// Looks up a user by name.
    ///
    /// # Errors
    /// Reading the tree's `etc/passwd` failed (a missing file means no users).
    pub fn user(&self, name: &str) -> io::Result<Option<Account>> {
        match self {
            Self::Host => Ok(uzers::get_user_by_name(name).map(|u| Account {
                uid: u.uid(),
                gid: u.primary_group_id(),
                home: u.home_dir().to_owned(),
                shell: u.shell().to_owned(),
            })),
            Self::Tree(root) => Ok(read_db(&root.join("etc/passwd"))?
                .iter()
                .find(|f| f[0] == name)
                .and_then(|f| {
                    Some(Account {
                        uid: f.get(2)?.parse().ok()?,
                        gid: f.get(3)?.parse().ok()?,
                        home: PathBuf::from(f.get(5)?),
                        shell: PathBuf::from(f.get(6)?),
                    })
                })),
        }
    }

    /// Looks up a user id; `root` is uid 0 even in a tree without `etc/passwd`.
    ///
    /// # Errors
    /// As [`Accounts::user`].
    pub fn uid(&self, name: &str) -> io::Result<Option<u32>> {
        if name == "root" {
            return Ok(Some(0));
        }
        Ok(self.user(name)?.map(|a| a.uid))
    }

    /// Looks up a group id; `root` is gid 0.
    ///
    /// # Errors
    /// Reading the tree's `etc/group` failed.
    pub fn gid(&self, name: &str) -> io::Result<Option<u32>> {
        if name == "root" {
            return Ok(Some(0));
        }
        match self {
            Self::Host => Ok(uzers::get_group_by_name(name).map(|g| g.gid())),
            Self::Tree(root) => Ok(read_db(&root.join("etc/group"))?
                .iter()
                .find(|f| f[0] == name)
                .and_then(|f| f.get(2)?.parse().ok())),
        }
    }
}

/// The colon-separated records of a passwd-format file.
fn read_db(path: &Path) -> io::Result<Vec<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_lookups_read_the_tree_files() {
        let dir = testkit::temp_dir();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nveza-api:!:998:997::/opt/veza/backend-api:/usr/sbin/nologin\n",
        )
        .unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\nveza-api:!:997:\n").unwrap();
        let accounts = Accounts::Tree(dir.path().to_owned());
        let api = accounts.user("veza-api").unwrap().unwrap();
        assert_eq!((api.uid, api.gid), (998, 997));
        assert_eq!(api.home, Path::new("/opt/veza/backend-api"));
        assert_eq!(api.shell, Path::new("/usr/sbin/nologin"));
        assert_eq!(accounts.gid("veza-api").unwrap(), Some(997));
        assert_eq!(accounts.user("veza").unwrap(), None);
        assert_eq!(accounts.gid("veza").unwrap(), None);
    }

    #[test]
    fn root_resolves_without_files() {
        let dir = testkit::temp_dir();
        let accounts = Accounts::Tree(dir.path().to_owned());
        assert_eq!(accounts.uid("root").unwrap(), Some(0));
        assert_eq!(accounts.gid("root").unwrap(), Some(0));
        assert_eq!(accounts.uid("daemon").unwrap(), None);
    }
}
