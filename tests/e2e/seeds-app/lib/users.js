// The backend's user table. A real backend has a database; the seeds log in
// against it with a username and a password and name the user by its numeric id.
const users = [
  { id: 42, username: "alice", password: "alice-password", name: "Alice", role: "member" },
  { id: 7, username: "bob", password: "bob-password", name: "Bob", role: "admin" },
];

export function findUser(username, password) {
  return users.find((u) => u.username === username && u.password === password) ?? null;
}
