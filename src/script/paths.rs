//! Where scripts find other scripts: `import "x"` looks next to the importing
//! file first, then in a base directory (the running script's directory, or
//! the current directory in the REPL), then in promot's own `stdlib/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};
type SharedModule = Shared<Module>;

/// The directory holding promot's Rhai standard library: `$PROMOT_HOME/stdlib`
/// when PROMOT_HOME is set, else `stdlib/` in the source tree promot was built from.
pub fn stdlib_dir() -> PathBuf {
    crate::home::stdlib_dir()
}

/// Module resolver for `import "name"`. Candidates, in order: the importing
/// file's directory, `base`, `stdlib_dir()`; ".rhai" is appended when the
/// name has no extension. Each module's AST gets its real file path as source,
/// so errors inside it point at the right file and its own relative imports work.
pub struct ScriptResolver {
    base: PathBuf,
    stdlib: PathBuf,
    cache: Option<Mutex<HashMap<PathBuf, SharedModule>>>,
}

impl ScriptResolver {
    /// `cache`: keep each loaded module for the life of the engine (scripts);
    /// the REPL turns it off so an edited file is re-read on the next import.
    pub fn new(base: impl Into<PathBuf>, cache: bool) -> Self {
        ScriptResolver {
            base: base.into(),
            stdlib: stdlib_dir(),
            cache: cache.then(|| Mutex::new(HashMap::new())),
        }
    }

    /// The file `import "path"` refers to from a script whose source is `importer`.
    pub fn find(&self, importer: Option<&str>, path: &str) -> Option<PathBuf> {
        let mut name = PathBuf::from(path);
        if name.extension().is_none() {
            name.set_extension("rhai");
        }
        if name.is_absolute() {
            return name.is_file().then_some(name);
        }
        let mut dirs = Vec::new();
        if let Some(parent) = importer.and_then(|s| Path::new(s).parent()) {
            if !parent.as_os_str().is_empty() {
                dirs.push(parent.to_path_buf());
            }
        }
        dirs.push(self.base.clone());
        dirs.push(self.stdlib.clone());
        dirs.into_iter().map(|d| d.join(&name)).find(|p| p.is_file())
    }
}

impl ModuleResolver for ScriptResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let Some(file) = self.find(source, path) else {
            return Err(Box::new(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos)));
        };
        if let Some(cache) = &self.cache {
            if let Some(m) = cache.lock().ok().and_then(|c| c.get(&file).cloned()) {
                return Ok(m);
            }
        }
        let shown = file.display().to_string();
        let in_module = |err| Box::new(EvalAltResult::ErrorInModule(shown.clone(), err, pos));
        let mut ast = engine.compile_file(file.clone()).map_err(in_module)?;
        ast.set_source(shown.clone());
        let module: SharedModule = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        if let Some(cache) = &self.cache {
            if let Ok(mut c) = cache.lock() {
                c.insert(file, module.clone());
            }
        }
        Ok(module)
    }
}
