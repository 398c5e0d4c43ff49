# Compatibility comparison (tests/compat_mod_wsgi.rs): a plain Flask application.
from flask import Flask, jsonify, redirect, request, make_response

app = Flask(__name__)


@app.route('/')
def index():
    return 'hello from flask\n'


@app.route('/json')
def as_json():
    return jsonify(path=request.path, script_root=request.script_root, url=request.url,
                   args=request.args.to_dict(), scheme=request.scheme,
                   remote_addr=request.remote_addr, host=request.host)


@app.route('/form', methods=['POST'])
def form():
    return jsonify(form=request.form.to_dict())


@app.route('/go')
def go():
    return redirect('/target')


@app.route('/cookies')
def cookies():
    r = make_response('cookies\n')
    r.set_cookie('a', '1')
    r.set_cookie('b', '2')
    r.set_cookie('c', '3')
    return r


application = app
